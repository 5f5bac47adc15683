"""Simulated learners of lesson 10: masked_softmax, additive_attention,
multiplicative_attention, attention_decoder_step.

The lesson asks the two attention functions to call the learner's
masked_softmax. Its checks give them no all-padding row and no float16, so a
masked softmax that is wrong only there (the -1e9 fill) costs its own exercise
alone, which the learner with that mistake shows. A masked softmax that is
wrong everywhere (masking after the softmax) would break the attention too; that
learner writes the attention functions with a softmax of their own, so the
mistake is seen costing its own exercise and nothing else.
"""
from .submissions import Submission
from .wrong import body
from .wrong_attention import (
    additive_keys_ignored, additive_library, masked_softmax_1e9_guarded, masked_softmax_after,
    masked_softmax_library, multiplicative_batch_axis, step_library, step_query_old,
)

MS, ADD, MULT, STEP = ("test_masked_softmax", "test_additive_attention", "test_multiplicative_attention",
                       "test_attention_decoder_step")

OWN_SOFTMAX_ADDITIVE = """
scores = torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v
weights = torch.nan_to_num(torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1))
return torch.einsum("bs,bsh->bh", weights, keys), weights
"""
OWN_SOFTMAX_MULTIPLICATIVE = """
q = query if W is None else query @ W
scores = torch.einsum("bh,bsh->bs", q, keys)
weights = torch.nan_to_num(torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1))
return torch.einsum("bs,bsh->bh", weights, keys), weights
"""

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (max-shifted exp by hand; a loop over positions; "
                       "einsum; W_out split by columns)",
        bodies={
            "masked_softmax": """
                mask = mask.expand(scores.shape)
                top = scores.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
                top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
                e = torch.exp(scores - top) * mask
                total = e.sum(-1, keepdim=True)
                return e / torch.where(total > 0, total, torch.ones_like(total))
            """,
            "additive_attention": """
                scores = torch.stack([torch.tanh(query @ W_q.T + keys[:, j] @ W_k.T) @ v
                                      for j in range(keys.shape[1])], dim=1)   # (B, S), one position at a time
                weights = masked_softmax(scores, mask)
                return (weights[..., None] * keys).sum(dim=1), weights
            """,
            "multiplicative_attention": """
                if W is None:
                    scores = torch.einsum("bh,bsh->bs", query, keys)
                else:
                    scores = torch.einsum("bq,qk,bsk->bs", query, W, keys)
                weights = masked_softmax(scores, mask)
                return torch.bmm(weights.unsqueeze(1), keys).squeeze(1), weights
            """,
            "attention_decoder_step": """
                s_t = cell(torch.index_select(embedding, 0, y_prev), s_prev)
                context, weights = attention(s_t, memory, mask)
                H = s_t.shape[1]
                logits = s_t @ W_out[:, :H].T + context @ W_out[:, H:].T + b_out
                return logits, s_t, weights
            """,
        }),
    Submission(
        "mask_after_softmax", "masked_softmax masks after the softmax (attention with a softmax of its own)",
        bodies={"masked_softmax": body(masked_softmax_after),
                "additive_attention": OWN_SOFTMAX_ADDITIVE,
                "multiplicative_attention": OWN_SOFTMAX_MULTIPLICATIVE},
        lost={MS}),
    Submission(
        "float16_fill_batch_axis", "masked_softmax fills with -1e9 (fails in float16); "
                                   "multiplicative_attention takes the softmax over the batch",
        bodies={"masked_softmax": body(masked_softmax_1e9_guarded),
                "multiplicative_attention": body(multiplicative_batch_axis)},
        lost={MS, MULT}),
    Submission(
        "keys_ignored_query_old", "additive scores that never read the keys (the tutorial's bug); "
                                  "the decoder attends with s_prev",
        bodies={"additive_attention": body(additive_keys_ignored),
                "attention_decoder_step": body(step_query_old)},
        lost={ADD, STEP}),
    Submission(
        "uses_library", "every exercise calls the package's own function",
        bodies={"masked_softmax": body(masked_softmax_library),
                "additive_attention": body(additive_library),
                "multiplicative_attention": "return rnncourse.attention.dot_attention(query, keys, mask) "
                                            "if W is None else rnncourse.attention.general_attention("
                                            "query, keys, mask, W)",
                "attention_decoder_step": body(step_library)},
        lost={MS, ADD, MULT, STEP}),
]
