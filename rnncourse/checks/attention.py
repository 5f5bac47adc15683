"""Checks for lesson 10 (attention): masked_softmax, additive_attention,
multiplicative_attention and attention_decoder_step (the last in
:mod:`rnncourse.checks.attention_step`, re-exported here).

Shapes: scores (B, S) or (B, T, S) with a mask that broadcasts to them (True at
real positions); query (B, Hq), keys (B, S, Hk) (the encoder states, also the
values), mask (B, S); the weights W_q (A, Hq), W_k (A, Hk), v (A,) of additive
attention, W (Hq, Hk) of Luong's general attention (None: dot attention, Hq = Hk).
References: :func:`rnncourse.masking.masked_softmax` and the functions of
:mod:`rnncourse.attention`, called outside the blocked region.

Beyond the float32/float64 cases of every check: masked_softmax meets a row
that is all padding and a float16 case; every exercise runs once on torch's
meta device (a device mistake fails without a GPU) and once with a random
cotangent back-propagated through its outputs (a model trains through them).
The attention exercises see no all-padding row and no float16, so a mistake of
the learner's masked_softmax in those corners costs that exercise only.
"""
from __future__ import annotations

import torch

from rnncourse import attention as RA
from rnncourse.checks.attention_cases import (
    CPU, KEYS_IGNORED, META, all_cases, compare_grads, context_shape_hints, context_variants, drawn,
    keys_ignored, lengths_mask, run_on_meta, sizes_with_ones, softmax_variants, uniform_weights,
    with_grad,
)
from rnncourse.checks.attention_step import check_attention_decoder_step
from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, call_learner, close, compare, on_cpu64, passed, randn, tolerance, validate,
    validate_items,
)
from rnncourse.masking import masked_softmax as _reference_softmax

__all__ = ["check_masked_softmax", "check_additive_attention", "check_multiplicative_attention",
           "check_attention_decoder_step"]

_FP16_OVERFLOW = ("filling the masked scores with a large negative number (such as -1e9) fails in "
                  "float16, whose largest magnitude is 65504. Fill with float('-inf'), or select with "
                  "torch.where, and give rows with no real position zeros")


# ----------------------------------------------------------------------------
# masked_softmax(scores, mask)

def _softmax_args(gen, _s, variant) -> Drawn:
    shape, ones, empty = variant  # "2d" or "3d", sizes set to 1, an all-padding row
    s = sizes_with_ones(gen, "BTS", ("B", "T", "S"), ones)
    B, T, S = s["B"], s["T"], s["S"]
    mask = lengths_mask(gen, B, S, empty_row=empty)  # (B, S)
    if shape == "2d":
        return Drawn({"scores": randn(gen, B, S, scale=2.0), "mask": mask},
                     sizes={"B": B, "S": S}, context={"shape": ("B", "S")})
    return Drawn({"scores": randn(gen, B, T, S, scale=2.0), "mask": mask.unsqueeze(1)},
                 sizes=s, context={"shape": ("B", "T", "S")})  # mask (B, 1, S): every query row


SOFTMAX_PLAN = Plan("", _softmax_args, variants=[("2d", (), False), ("3d", (), False)],
                    hidden_seeds=(10, 11, 12, 13), low=2, high=9)
_SOFTMAX_HIDDEN = Plan("", _softmax_args, hidden_seeds=(10, 11, 12, 13),
                       variants=[("2d", (), False), ("3d", (), False), ("2d", ("S",), False),
                                 ("3d", ("B",), False)])


def _softmax_extra(hidden: bool) -> list:
    base = 20 if hidden else 2
    dtype = torch.float64 if hidden else torch.float32
    empty = ("3d", (), True) if hidden else ("2d", (), True)
    return [
        (base, dtype, CPU, drawn(_softmax_args, base, empty), {"empty": True}),
        (base + 1, torch.float16, CPU, drawn(_softmax_args, base + 1, ("2d", (), False)), {}),
        (base + 2, torch.float32, META, drawn(_softmax_args, base + 2, ("2d", (), False)), {}),
        (base + 3, torch.float64, CPU, drawn(_softmax_args, base + 3, ("3d", (), False)), {"grad": True}),
    ]


def _call(fn, case, exercise):
    """call_learner, naming a float16 overflow where one is raised."""
    try:
        return call_learner(fn, case, exercise)
    except CheckFailed as e:
        if case.dtype == torch.float16 and "overflow" in str(e):
            raise CheckFailed(f"{exercise}, {case.label}: your function raised an overflow error: "
                              f"{_FP16_OVERFLOW}.") from None
        raise


def check_masked_softmax(masked_softmax, hidden: bool = False) -> None:
    """masked_softmax(scores, mask) -> weights of scores' shape: a softmax over the last
    axis that gives masked positions (mask False) exactly 0 and a row with no real
    position all zeros; mask broadcasts to scores; float16 works."""
    exercise = "masked_softmax"
    cases = all_cases(hidden, _SOFTMAX_HIDDEN if hidden else SOFTMAX_PLAN, _softmax_extra(hidden))
    for case in cases:
        shape = case.context["shape"]
        if case.device == META:
            run_on_meta(masked_softmax, case, exercise, [("the weight tensor", shape)])
            continue
        if case.context.get("grad"):
            with_grad(case, ["scores"])
        out = _call(masked_softmax, case, exercise)
        a = on_cpu64(case)
        full = a["mask"].expand(a["scores"].shape)
        empty_rows = ~full.any(-1)  # rows with no real position
        if isinstance(out, torch.Tensor) and tuple(out.shape) == tuple(a["scores"].shape) \
                and out.is_floating_point() and torch.isnan(out.detach()).any():
            nan_rows = torch.isnan(out.detach().cpu()).any(-1)
            if empty_rows.any() and torch.equal(nan_rows, empty_rows):
                raise CheckFailed(f"{exercise}, {case.label}: a row whose positions are all padding came "
                                  "out as NaN: with every score at -inf the softmax divides 0 by 0. "
                                  "Give such rows all-zero weights (nothing to attend to).")
            if case.dtype == torch.float16:
                raise CheckFailed(f"{exercise}, {case.label}: the weights contain NaN in float16: "
                                  f"{_FP16_OVERFLOW}.")
        hints = {tuple(a["scores"].shape[:-1]): "the source axis was summed or reduced away"}
        validate(out, case, exercise, "the weight tensor", shape, shape_hints=hints)
        ref = _reference_softmax(a["scores"], a["mask"])
        variants = softmax_variants(a["scores"], a["mask"])
        if empty_rows.any():
            uniform = torch.where(empty_rows[..., None], torch.full_like(ref, 1 / ref.shape[-1]), ref)
            variants = {"a row with no real position gets uniform weights 1/S instead of zeros (a large "
                        "negative fill such as -1e9 leaves every score of that row equal; such rows "
                        "must come out all zero)": uniform, **variants}
        leak = out.detach().cpu()[~full]
        if leak.numel() and (leak != 0).any():
            compare(out, ref, case, exercise, "the weight tensor", variants)  # names the mistake if it can
            raise CheckFailed(f"{exercise}, {case.label}: masked positions must get a weight of exactly 0; "
                              f"the largest there is {float(leak.abs().max()):.3g}. Mask the scores "
                              "before the softmax (or zero them with torch.where), not by a small number.")
        compare(out, ref, case, exercise, "the weight tensor", variants)
        if case.context.get("grad"):
            compare_grads([out], [case.args["scores"]], ["scores"],
                          lambda x: _reference_softmax(x["scores"], x["mask"]), case, exercise, "the weights")
    passed(exercise, cases, hidden)


# ----------------------------------------------------------------------------
# attention over padded keys: shared by additive and multiplicative

def _keys(gen, B, S, Hq, Hk) -> dict:
    # the padding holds random values, not zeros: an unmasked position must show
    return {"query": randn(gen, B, Hq), "keys": randn(gen, B, S, Hk), "mask": lengths_mask(gen, B, S)}


def _check_attention(fn, case, exercise, reference, scores_fn, extra_variants) -> None:
    B, S, Hk = case.sizes["B"], case.sizes["S"], case.sizes["Hk"]
    if case.device == META:
        run_on_meta(fn, case, exercise, [("context", ("B", "Hk")), ("weights", ("B", "S"))])
        return
    grad = case.context.get("grad")
    inputs = with_grad(case, case.context["grad_args"]) if grad else []
    result = call_learner(fn, case, exercise)
    context, weights = validate_items(result, case, exercise, ("context", "weights"))
    if isinstance(context, torch.Tensor) and isinstance(weights, torch.Tensor) \
            and tuple(context.shape) == (B, S) and tuple(weights.shape) == (B, Hk):
        raise CheckFailed(f"{exercise}, {case.label}: the pair is the wrong way round: return "
                          "(context, weights), context (B, Hk) first.")
    validate(weights, case, exercise, "weights", ("B", "S"), shape_hints={
        (B, S, Hk): "the scores must be one number per source position: reduce over the features"})
    validate(context, case, exercise, "context", ("B", "Hk"), shape_hints=context_shape_hints(B, S, Hk))
    a = on_cpu64(case)
    ref_c, ref_w = reference(a)
    leak = weights.detach().cpu()[~a["mask"]]
    wrong = {**softmax_variants(scores_fn(a), a["mask"]), **extra_variants(a)}
    if not torch.equal(leak, torch.zeros_like(leak)) or not _matches(weights, ref_w, case):
        if keys_ignored(fn, case, exercise, weights, "keys", lambda r: r[1] if isinstance(r, (tuple, list))
                        and len(r) == 2 else None):
            raise CheckFailed(f"{exercise}, {case.label}: {KEYS_IGNORED}")
        compare(weights, ref_w, case, exercise, "the weight tensor", wrong)
        raise CheckFailed(f"{exercise}, {case.label}: padded positions must get a weight of exactly 0 "
                          f"(the largest there is {float(leak.abs().max()):.3g}).")
    compare(context, ref_c, case, exercise, "the context", context_variants(ref_w, a["keys"], a["mask"]))
    if grad:
        compare_grads([context, weights], inputs, case.context["grad_args"], lambda x: reference(x),
                      case, exercise, "(context, weights)")


def _matches(out, ref, case) -> bool:
    return close(out, ref, *tolerance(case, out.dtype))


def _extra(build, hidden: bool, variants: list, grad_args: list) -> list:
    base = 20 if hidden else 2
    return [(base, torch.float32, META, drawn(build, base, variants[0]), {}),
            (base + 1, torch.float64, CPU, drawn(build, base + 1, variants[-1]),
             {"grad": True, "grad_args": grad_args})]


# ----------------------------------------------------------------------------
# additive_attention(query, keys, mask, W_q, W_k, v)

def _additive_args(gen, _s, ones) -> Drawn:
    s = sizes_with_ones(gen, "BSQKA", ("B", "S", "Hq", "Hk", "A"), ones)
    B, S, Hq, Hk, A = (s[n] for n in ("B", "S", "Hq", "Hk", "A"))
    args = {**_keys(gen, B, S, Hq, Hk), "W_q": randn(gen, A, Hq, scale=0.7),
            "W_k": randn(gen, A, Hk, scale=0.7), "v": randn(gen, A, scale=1.5)}
    return Drawn(args, sizes=s)


ADDITIVE_PLAN = Plan("", _additive_args, variants=[()], hidden_seeds=(10, 11, 12, 13))
_ADDITIVE_HIDDEN = Plan("", _additive_args, variants=[(), ("B",), ("S",), ("A",)], hidden_seeds=(10, 11, 12, 13))


def _additive_reference(a):
    return RA.additive_attention(a["query"], a["keys"], a["mask"], a["W_q"], a["W_k"], a["v"])


def _additive_scores(a):
    return RA.additive_scores(a["query"], a["keys"], a["W_q"], a["W_k"], a["v"])


def _additive_wrong(a) -> dict:
    linear = (a["query"] @ a["W_q"].T).unsqueeze(1) + a["keys"] @ a["W_k"].T  # (B, S, A)
    return {"the tanh is missing from the score (e_j = v . (W_q q + W_k k_j))":
            RA.attend(linear @ a["v"], a["keys"], a["mask"])[1]}


def check_additive_attention(additive_attention, hidden: bool = False) -> None:
    """additive_attention(query, keys, mask, W_q, W_k, v) -> (context (B, Hk), weights (B, S)),
    e_j = v . tanh(W_q q + W_k k_j), masked softmax over the source positions, c = sum_j a_j k_j."""
    exercise = "additive_attention"
    extra = _extra(_additive_args, hidden, [(), ()], ["query", "keys", "W_q", "W_k", "v"])
    cases = all_cases(hidden, _ADDITIVE_HIDDEN if hidden else ADDITIVE_PLAN, extra)
    for case in cases:
        _check_attention(additive_attention, case, exercise, _additive_reference, _additive_scores,
                         _additive_wrong)
    passed(exercise, cases, hidden)


# ----------------------------------------------------------------------------
# multiplicative_attention(query, keys, mask, W=None)

def _multiplicative_args(gen, _s, variant) -> Drawn:
    kind, ones = variant
    s = sizes_with_ones(gen, "BSQK", ("B", "S", "Hq", "Hk"), ones)
    if kind == "dot":
        s["Hq"] = s["Hk"]  # dot attention compares vectors of one size
    B, S, Hq, Hk = (s[n] for n in ("B", "S", "Hq", "Hk"))
    args = {**_keys(gen, B, S, Hq, Hk), "W": None if kind == "dot" else randn(gen, Hq, Hk, scale=0.6)}
    return Drawn(args, sizes=s)


MULT_PLAN = Plan("", _multiplicative_args, variants=[("general", ()), ("dot", ())],
                 hidden_seeds=(10, 11, 12, 13))
_MULT_HIDDEN = Plan("", _multiplicative_args, hidden_seeds=(10, 11, 12, 13, 14, 15),
                    variants=[("general", ()), ("dot", ()), ("general", ("B",)), ("dot", ("S",)),
                              ("general", ("S",)), ("dot", ("B",))])


def _mult_reference(a):
    if a["W"] is None:
        return RA.dot_attention(a["query"], a["keys"], a["mask"])
    return RA.general_attention(a["query"], a["keys"], a["mask"], a["W"])


def _mult_scores(a):
    return RA.dot_scores(a["query"], a["keys"]) if a["W"] is None else \
        RA.general_scores(a["query"], a["keys"], a["W"])


def _mult_wrong(a) -> dict:
    e = _mult_scores(a)
    v = {"the scores are divided by sqrt(Hk) (the transformer's scaled dot product; Luong's "
         "scores are not scaled)": RA.attend(e / a["keys"].shape[-1] ** 0.5, a["keys"], a["mask"])[1]}
    if a["W"] is not None and a["W"].shape[0] == a["W"].shape[1]:
        v["W is left out (dot attention instead of general)"] = \
            RA.attend(RA.dot_scores(a["query"], a["keys"]), a["keys"], a["mask"])[1]
    return v


def check_multiplicative_attention(multiplicative_attention, hidden: bool = False) -> None:
    """multiplicative_attention(query, keys, mask, W=None) -> (context (B, Hk), weights (B, S)):
    Luong's dot score q . k_j when W is None (Hq = Hk), general q^T W k_j with W (Hq, Hk)."""
    exercise = "multiplicative_attention"
    extra = _extra(_multiplicative_args, hidden, [("general", ()), ("general", ())],
                   ["query", "keys", "W"])
    extra.append((extra[-1][0] + 1, torch.float64, CPU, drawn(_multiplicative_args, 40, ("dot", ())),
                  {"grad": True, "grad_args": ["query", "keys"]}))
    cases = all_cases(hidden, _MULT_HIDDEN if hidden else MULT_PLAN, extra)
    for case in cases:
        _check_attention(multiplicative_attention, case, exercise, _mult_reference, _mult_scores, _mult_wrong)
    passed(exercise, cases, hidden)
