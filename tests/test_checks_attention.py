"""The lesson-10 checks accept correct code however it is written (looped or
vectorised, float32 or float64 inside, any device) and reject the typical wrong
variants of attention with the right diagnosis."""
import inspect
import textwrap

import pytest
import torch

import rnncourse
from rnncourse.checks.attention import (
    check_additive_attention, check_attention_decoder_step, check_masked_softmax,
    check_multiplicative_attention,
)
from rnncourse.checks.core import CheckFailed

from _reject import assert_rejected
from classroom import cases
from classroom.wrong import body
from classroom.wrong_attention import LEARNERS, masked_softmax, shared

CHECKS = {
    "masked_softmax": check_masked_softmax,
    "additive_attention": check_additive_attention,
    "multiplicative_attention": check_multiplicative_attention,
    "attention_decoder_step": check_attention_decoder_step,
}


# ---------------------------------------------------------------- correct code

def softmax_where(scores, mask):
    mask = mask.expand(scores.shape)
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.where(mask, w, torch.zeros_like(w))


def softmax_by_hand(scores, mask):
    # max over the real positions, exp, zeros elsewhere, a safe division
    mask = mask.expand(scores.shape)
    top = scores.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    e = torch.exp(scores - top) * mask
    return e / e.sum(-1, keepdim=True).clamp_min(torch.finfo(scores.dtype).tiny)


def softmax_rows_looped(scores, mask):
    # one row at a time, computed in float64 and cast back
    mask = mask.expand(scores.shape)
    flat_s, flat_m = scores.reshape(-1, scores.shape[-1]), mask.reshape(-1, scores.shape[-1])
    rows = []
    for s, m in zip(flat_s.double(), flat_m):
        w = torch.zeros_like(s)
        if m.any():
            w[m] = torch.softmax(s[m], dim=0)
        rows.append(w)
    return torch.stack(rows).reshape(scores.shape).to(scores.dtype)


def softmax_nan_to_num(scores, mask):
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(w, nan=0.0)


def additive_vectorised(query, keys, mask, W_q, W_k, v):
    w = softmax_where(torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v, mask)
    return torch.bmm(w.unsqueeze(1), keys).squeeze(1), w


def additive_looped(query, keys, mask, W_q, W_k, v):
    # one source position at a time, einsum for the context
    scores = torch.stack([torch.tanh(query @ W_q.T + keys[:, j] @ W_k.T) @ v
                          for j in range(keys.shape[1])], dim=1)  # (B, S)
    w = softmax_by_hand(scores, mask)
    return torch.einsum("bs,bsh->bh", w, keys), w


def mult_einsum(query, keys, mask, W=None):
    e = torch.einsum("bq,qk,bsk->bs", query, W, keys) if W is not None else torch.einsum("bh,bsh->bs", query, keys)
    w = softmax_nan_to_num(e, mask)
    return (w[..., None] * keys).sum(1), w


def mult_keys_side(query, keys, mask, W=None):
    # W applied to the keys instead of the query: q . (W k_j), the same score
    k = keys if W is None else keys @ W.T  # (B, S, Hq)
    w = softmax_rows_looped((k @ query.unsqueeze(-1)).squeeze(-1), mask)
    return (w.unsqueeze(1) @ keys).squeeze(1), w


def step_plain(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
    s_t = cell(embedding[y_prev], s_prev)
    context, weights = attention(s_t, memory, mask)
    return torch.cat([s_t, context], -1) @ W_out.T + b_out, s_t, weights


def step_split_weights(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
    # W_out split into its state and context columns; the embedding as a one-hot product
    x = torch.nn.functional.one_hot(y_prev, embedding.shape[0]).to(embedding.dtype) @ embedding
    s_t = cell(x, s_prev)
    context, weights = attention(s_t, memory, mask)
    H = s_t.shape[1]
    logits = s_t @ W_out[:, :H].T + context @ W_out[:, H:].T + b_out
    return [logits, s_t, weights]


RIGHT = {
    "masked_softmax": [softmax_where, softmax_by_hand, softmax_rows_looped, softmax_nan_to_num],
    "additive_attention": [additive_vectorised, additive_looped],
    "multiplicative_attention": [mult_einsum, mult_keys_side],
    "attention_decoder_step": [step_plain, step_split_weights],
}


@pytest.mark.parametrize("exercise,fn", [(e, f) for e, fns in RIGHT.items() for f in fns],
                         ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("hidden", [False, True])
def test_right_code_passes(exercise, fn, hidden, capsys):
    CHECKS[exercise](fn, hidden=hidden)
    out = capsys.readouterr()
    assert "pass" in out.out and out.err == ""


# ---------------------------------------------------------------- wrong code

WRONG = [(e, s, fn, diag) for e in CHECKS for s, (fn, diag) in shared(e).items()]


@pytest.mark.parametrize("exercise,student,fn,diagnosis", WRONG, ids=[f"{w[0]}-{w[1]}" for w in WRONG])
def test_wrong_code_is_rejected_with_its_diagnosis(exercise, student, fn, diagnosis):
    assert_rejected(CHECKS[exercise], fn, diagnosis, exercise)


def _as_notebook_cell(learner):
    """The learner's function rebuilt from its body in a notebook's namespace."""
    params = str(inspect.signature(learner.fn))
    source = f"def {learner.exercise}{params}:\n" + textwrap.indent(body(learner.fn), "    ")
    namespace = {"torch": torch, "rnncourse": rnncourse, "masked_softmax": masked_softmax}
    exec(compile(source, f"<{learner.student}>", "exec"), namespace)
    return namespace[learner.exercise]


@pytest.mark.parametrize("exercise,student", [(e, s) for e in LEARNERS for s in LEARNERS[e]])
def test_a_learners_body_in_a_notebook_is_rejected_too(exercise, student):
    learner = LEARNERS[exercise][student]
    assert_rejected(CHECKS[exercise], _as_notebook_cell(learner), learner.diagnosis)
    assert_rejected(CHECKS[exercise], learner.fn, "", hidden=False)  # the visible tests reject it too


def test_the_class_hands_in_the_shared_bodies():
    from classroom.wrong_attention import additive_keys_ignored, step_query_old
    handed = {(ex, s.student): code for s in cases("10_attention") for ex, code in s.bodies.items()}
    assert handed["additive_attention", "keys_ignored_query_old"] == body(additive_keys_ignored)
    assert handed["attention_decoder_step", "keys_ignored_query_old"] == body(step_query_old)
    masked_softmax_correct = shared("masked_softmax")  # the registry holds only wrong ones
    assert "masked_softmax" not in {s for s in masked_softmax_correct}
    check_masked_softmax(masked_softmax, hidden=True)  # the bodies' helper is right


def test_every_named_mistake_of_the_issue_has_a_learner():
    named = {e: set(shared(e)) for e in CHECKS}
    assert {"mask_after_softmax", "wrong_axis", "fill_minus_1e9", "fill_1e9_float16", "nan_row"} <= named["masked_softmax"]
    assert {"keys_ignored", "context_features", "weights_matmul_keys"} <= named["additive_attention"]
    assert {"batch_axis", "keys_ignored"} <= named["multiplicative_attention"]
    assert "query_old" in named["attention_decoder_step"]


def test_visible_cases_catch_the_float16_fill():
    # the float16 case is visible: a learner hears about it before grading
    assert_rejected(check_masked_softmax, shared("masked_softmax")["fill_1e9_float16"][0], "float16",
                    hidden=False)


def test_the_stub_and_a_missing_function_fail_clearly():
    def stub(*args):
        raise NotImplementedError("replace with your code")
    for check in CHECKS.values():
        with pytest.raises(CheckFailed, match="NotImplementedError"):
            check(stub)
        with pytest.raises(CheckFailed, match="should be a function"):
            check(None)


def test_decoder_step_runs_what_it_hands_over_and_nothing_else_of_the_package():
    # the attention and cell handed over run (the right answers above call them);
    # the package's decoder, its decoder step and its attention do not
    def via_module(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
        dec = rnncourse.attention.AttentionDecoder(embedding.shape[0], embedding.shape[1],
                                                   s_prev.shape[1], memory.shape[2], dtype=memory.dtype)
        return dec.step(y_prev, s_prev, memory, mask)
    assert_rejected(check_attention_decoder_step, via_module, "rnncourse.AttentionDecoder was called")

    def via_step(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
        return rnncourse.attention.attention_decoder_step(y_prev, s_prev, memory, mask, embedding, cell,
                                                          attention, W_out, b_out)
    assert_rejected(check_attention_decoder_step, via_step, "attention_decoder_step (rnncourse/attention.py)")

    def own_attention(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
        s = cell(embedding[y_prev], s_prev)
        c, w = rnncourse.attention.dot_attention(s, memory, mask)  # not the one handed over
        return torch.cat([s, c], -1) @ W_out.T + b_out, s, w
    assert_rejected(check_attention_decoder_step, own_attention, "dot_attention (rnncourse/attention.py)")


def test_pair_returned_the_wrong_way_round():
    def swapped(query, keys, mask, W_q, W_k, v):
        c, w = additive_vectorised(query, keys, mask, W_q, W_k, v)
        return w, c
    assert_rejected(check_additive_attention, swapped, "wrong way round", "additive_attention")
