"""Check for lesson 10's decoder step with attention, attention_decoder_step.

The learner combines pieces the check hands over: a recurrent cell (a GRU step
from :mod:`rnncourse.functional`) and an attention function (the package's
additive or general attention) with random weights. They are the check's own
code, handed to the learner's (``guard.handed_to_learner``: unblocked while
they run); everything else of the package is blocked as for every exercise,
the decoder step itself (:data:`rnncourse.attention.DECODER_STEP`) and torch's
recurrent kernels included.

    x_t = embedding[y_prev]            (B, E)
    s_t = cell(x_t, s_prev)            (B, H)
    c_t, a_t = attention(s_t, memory, mask)     (B, Hk), (B, S)
    logits = [s_t; c_t] @ W_out.T + b_out       (B, V)
"""
from __future__ import annotations

import torch

from rnncourse import attention as RA
from rnncourse import functional as RF
from rnncourse.checks.attention_cases import (
    CPU, META, all_cases, compare_grads, drawn, lengths_mask, run_on_meta, sizes_with_ones, with_grad,
)
from rnncourse.checks.core import (
    Drawn, Plan, call_learner, compare, make_case, on_cpu64, passed, randn, validate, validate_items,
)
from rnncourse.guard import RECURRENT_KERNELS, handed_to_learner
from rnncourse.validation import ShapeError

_BLOCKS = (RECURRENT_KERNELS, RA.DECODER_STEP)
_ORDER = ("y_prev", "s_prev", "memory", "mask", "embedding", "cell", "attention", "W_out", "b_out")
_HINT = ("the step is: x = embedding[y_prev]; s_t = cell(x, s_prev); context, weights = "
         "attention(s_t, memory, mask); logits = torch.cat([s_t, context], -1) @ W_out.T + b_out.")


def _args(gen, _s, variant) -> Drawn:
    kind, ones = variant
    s = sizes_with_ones(gen, "BSHKVEA", ("B", "S", "H", "Hk", "V", "E", "A"), ones)
    B, S, H, Hk, V, E, A = (s[n] for n in ("B", "S", "H", "Hk", "V", "E", "A"))
    args = {"y_prev": torch.randint(0, V, (B,), generator=gen), "s_prev": randn(gen, B, H).tanh(),
            "memory": randn(gen, B, S, Hk), "mask": lengths_mask(gen, B, S),
            "embedding": randn(gen, V, E), "W_out": randn(gen, V, H + Hk, scale=0.5),
            "b_out": randn(gen, V, scale=0.5)}
    cell = {"W_ih": randn(gen, 3 * H, E, scale=0.5), "W_hh": randn(gen, 3 * H, H, scale=0.5),
            "b_ih": randn(gen, 3 * H, scale=0.3), "b_hh": randn(gen, 3 * H, scale=0.3)}
    if kind == "additive":
        attn = {"W_q": randn(gen, A, H), "W_k": randn(gen, A, Hk), "v": randn(gen, A, scale=1.5)}
    else:
        attn = {"W": randn(gen, H, Hk, scale=0.8)}
    return Drawn(args, sizes=s, context={"kind": kind, "cell": cell, "attn": attn})


PLAN = Plan("", _args, variants=[("additive", ()), ("general", ())])
_HIDDEN = Plan("", _args, hidden_seeds=(10, 11, 12, 13),
               variants=[("additive", ()), ("general", ()), ("additive", ("B",)), ("general", ("S",))])


def make_cell(w: dict):
    """cell(x (B, E), s (B, H)) -> (B, H): a GRU step with the weights ``w``
    (handed to the learner's code: unblocked while it runs)."""
    E, H = w["W_ih"].shape[1], w["W_hh"].shape[1]

    def cell(x, s):
        if not isinstance(x, torch.Tensor) or x.dim() != 2 or x.shape[1] != E:
            raise ShapeError(f"cell(x, s): x must be the embedded token, shape (B, E) with E = {E}, got "
                             f"{tuple(getattr(x, 'shape', ()))}")
        if not isinstance(s, torch.Tensor) or s.dim() != 2 or s.shape[1] != H:
            raise ShapeError(f"cell(x, s): s must be the previous state, shape (B, H) with H = {H}, got "
                             f"{tuple(getattr(s, 'shape', ()))}")
        return RF.gru_step(RF.input_projection(x, w["W_ih"], w["b_ih"]), s, w["W_hh"], w["b_hh"])
    return handed_to_learner(cell)


def make_attention(kind: str, w: dict):
    """attention(query (B, H), keys (B, S, Hk), mask (B, S)) -> (context (B, Hk), weights (B, S))
    (handed to the learner's code: unblocked while it runs)."""
    def attention(query, keys, mask):
        if kind == "additive":
            return RA.additive_attention(query, keys, mask, w["W_q"], w["W_k"], w["v"])
        return RA.general_attention(query, keys, mask, w["W"])
    return handed_to_learner(attention)


def _place(ws: dict, case) -> dict:
    return {k: v.to(case.device, case.dtype) for k, v in ws.items()}


def _learner_case(case):
    """The case with the cell and attention built for its dtype and device."""
    args = dict(case.args)
    args["cell"] = make_cell(_place(case.context["cell"], case))
    args["attention"] = make_attention(case.context["kind"], _place(case.context["attn"], case))
    return make_case(case.index, case.total, case.seed, case.dtype, case.device, case.sizes,
                     {k: args[k] for k in _ORDER}, case.context, case.title)


def _step(a: dict, query="new", order="sc", bias=True, probs=False):
    """The step on float64 CPU arguments, with the named mistakes: (logits, s_t, weights)."""
    cell = make_cell(a["cell_w"])
    attention = make_attention(a["kind"], a["attn_w"])
    s = cell(a["embedding"][a["y_prev"]], a["s_prev"])  # (B, H)
    context, weights = attention(s if query == "new" else a["s_prev"], a["memory"], a["mask"])
    feats = torch.cat([s, context] if order == "sc" else [context, s], dim=-1)  # (B, H + Hk)
    logits = feats @ a["W_out"].T + (a["b_out"] if bias else 0)  # (B, V)
    return (torch.softmax(logits, -1) if probs else logits), s, weights


def _cpu_args(case) -> dict:
    a = on_cpu64(case)
    a["kind"] = case.context["kind"]
    a["cell_w"], a["attn_w"] = case.context["cell"], case.context["attn"]
    return a


QUERY_OLD = ("the attention's query is the previous state s_prev; attend with the new state s_t that "
             "the cell just computed (the state that will choose this step's token)")


def check_attention_decoder_step(attention_decoder_step, hidden: bool = False) -> None:
    """attention_decoder_step(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out)
    -> (logits (B, V), s_t (B, H), weights (B, S)), attending with the new state s_t."""
    exercise = "attention_decoder_step"
    base = 20 if hidden else 2
    grad_args = ["s_prev", "memory", "embedding", "W_out", "b_out"]
    extra = [(base, torch.float32, META, drawn(_args, base, ("additive", ())), {}),
             (base + 1, torch.float64, CPU, drawn(_args, base + 1, ("general", ())), {"grad": True})]
    cases = [_learner_case(c) for c in all_cases(hidden, _HIDDEN if hidden else PLAN, extra)]
    for case in cases:
        if case.device == META:
            _meta(attention_decoder_step, case, exercise)
            continue
        grad = case.context.get("grad")
        inputs = with_grad(case, grad_args) if grad else []
        result = _call(attention_decoder_step, case, exercise)
        logits, s_t, weights = validate_items(result, case, exercise, ("logits", "s_t", "weights"))
        B, V, H = case.sizes["B"], case.sizes["V"], case.sizes["H"]
        validate(logits, case, exercise, "logits", ("B", "V"), shape_hints={
            (V,): "the batch axis is missing", (B, 1, V): "drop the middle axis"})
        validate(s_t, case, exercise, "s_t", ("B", "H"))
        validate(weights, case, exercise, "weights", ("B", "S"))
        a = _cpu_args(case)
        ref_z, ref_s, ref_w = _step(a)
        compare(s_t, ref_s, case, exercise, "s_t", {
            "you return the previous state s_prev instead of the new state s_t": a["s_prev"]}, hint=_HINT)
        compare(weights, ref_w, case, exercise, "the weight tensor", {QUERY_OLD: _step(a, query="old")[2]},
                hint=_HINT)
        compare(logits, ref_z, case, exercise, "the logits", {
            QUERY_OLD: _step(a, query="old")[0],
            "the features are concatenated as [context; s_t]; W_out's columns are ordered [s_t; context]":
                _step(a, order="cs")[0],
            "b_out is left out": _step(a, bias=False)[0],
            "you return probabilities (a softmax of the logits); return the logits themselves":
                _step(a, probs=True)[0],
        }, hint=_HINT)
        if grad:
            def reference(x, a=a):
                return _step({**a, **{k: x[k] for k in grad_args}})[:2]
            compare_grads([logits, s_t], inputs, grad_args, reference, case, exercise, "(logits, s_t)")
    passed(exercise, cases, hidden)


def _call(fn, case, exercise):
    return call_learner(fn, case, exercise, hint_on_error=_HINT, blocks=_BLOCKS)


def _meta(fn, case, exercise) -> None:
    run_on_meta(fn, case, exercise, [("logits", ("B", "V")), ("s_t", ("B", "H")), ("weights", ("B", "S"))],
                blocks=_BLOCKS)
