"""Checks for lesson 01 (the vanilla RNN): rnn_step, rnn_forward, next_token_probs.

Shapes follow the course: x_t (B, I), x (B, T, I) batch-first, h (B, H), and
PyTorch's weight layout W_ih (H, I), W_hh (H, H), b_ih (H,), b_hh (H,) (torch's
weight_ih_l0, ...), W_hy (V, H), b_y (V,). References come from
``rnncourse.functional.rnn_cell``; the known wrong variants are computed here.
"""
from __future__ import annotations

import torch

from rnncourse import functional as F
from rnncourse.checks.core import (
    Drawn, Plan, build_cases, call_learner, compare, helper_first, on_cpu64, on_shape_error, passed,
    randn, validate, validate_items,
)

_LAYOUT = ("Weights use PyTorch's layout: W_ih is (H, I) and W_hh is (H, H), so the "
           "terms are x_t @ W_ih.T and h_prev @ W_hh.T; the biases (H,) broadcast over the batch.")
# the layout hint where the evidence is about shapes; the equation where it is about values
_ON_SHAPES = on_shape_error(_LAYOUT)
_EQUATION = "h_t = tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh), one (B, H) state per step."


# ----------------------------------------------------------------------------
# cases and references

def _weights(gen: torch.Generator, I: int, H: int) -> dict:
    # Random normal matrices are non-symmetric, so a transposed W_hh is caught;
    # the scale keeps tanh away from saturation, where wrong variants look alike.
    return {
        "W_ih": randn(gen, H, I, scale=0.6),
        "W_hh": randn(gen, H, H, scale=0.6),
        "b_ih": randn(gen, H, scale=0.5),
        "b_hh": randn(gen, H, scale=0.5),
    }


def _step_args(gen, s):
    B, I, H = s["B"], s["I"], s["H"]
    return Drawn({"x_t": randn(gen, B, I), "h_prev": randn(gen, B, H, scale=0.8).tanh(),
                  **_weights(gen, I, H)})


def _forward_args(gen, s):
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    return Drawn({"x": randn(gen, B, T, I), "h0": randn(gen, B, H, scale=0.8).tanh(),
                  **_weights(gen, I, H)})


def _probs_args(gen, s):
    B, H, V = s["B"], s["H"], s["V"]
    return Drawn({"h": randn(gen, B, H).tanh(), "W_hy": randn(gen, V, H, scale=1.5), "b_y": randn(gen, V)})


def _reference_step(a: dict) -> torch.Tensor:
    # rnncourse.functional's cell, called outside the blocked region: only the
    # learner's code runs blocked.
    return F.rnn_cell(a["x_t"], a["h_prev"], a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"])  # (B, H)


def reference_forward(x, h0, W_ih, W_hh, b_ih, b_hh) -> tuple:
    """(outputs (B, T, H), h_T (B, H)) of the batch-first tanh RNN, step by step."""
    h, outputs = h0, []
    for t in range(x.shape[1]):
        h = F.rnn_cell(x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        outputs.append(h)
    return torch.stack(outputs, dim=1), h


def _reference_forward(a: dict) -> tuple:
    return reference_forward(*(a[k] for k in ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh")))


def _reference_probs(a: dict) -> torch.Tensor:
    return torch.softmax(a["h"] @ a["W_hy"].T + a["b_y"], dim=-1)  # (B, V)


# Sizes of 1 in one case each (a batch of one, one feature, one unit, one step); a
# meta-device run (a tensor made without device=); a gradient case, since models
# train through all three.
STEP_PLAN = Plan("BIH", _step_args, ones="BIH", meta=True, gradient=_reference_step)
FORWARD_PLAN = Plan("BTIH", _forward_args, ones="BTIH", meta=True, gradient=_reference_forward)
PROBS_PLAN = Plan("BHV", _probs_args, ones="BH", meta=True, gradient=_reference_probs)


# ----------------------------------------------------------------------------
# known wrong variants, each named by the phrase that completes
# "your output matches what you get if ..."

def _step(x, h, a, act=torch.tanh, W_hh_T=False, b_ih=True, b_hh=True, recur=True):
    W_hh = a["W_hh"].T if W_hh_T else a["W_hh"]
    z = x @ a["W_ih"].T  # (B, H)
    if recur:
        z = z + h @ W_hh.T
    if b_ih:
        z = z + a["b_ih"]
    if b_hh:
        z = z + a["b_hh"]
    return act(z)


_STEP_VARIANTS = {
    "the tanh is missing (the pre-activation is returned)": dict(act=lambda z: z),
    "ReLU is used instead of tanh": dict(act=torch.relu),
    "sigmoid is used instead of tanh": dict(act=torch.sigmoid),
    "W_hh is transposed (h_prev @ W_hh instead of h_prev @ W_hh.T)": dict(W_hh_T=True),
    "b_hh is left out": dict(b_hh=False),
    "b_ih is left out": dict(b_ih=False),
    "both biases are left out": dict(b_ih=False, b_hh=False),
    "h_prev is ignored (there is no recurrent term)": dict(recur=False),
}


def _forward_variant(a, carry=True, **step_kw):
    h, outs = a["h0"], []
    for t in range(a["x"].shape[1]):
        h = _step(a["x"][:, t], h if carry else a["h0"], a, **step_kw)
        outs.append(h)
    return torch.stack(outs, dim=1)  # (B, T, H)


def _forward_variants(a: dict, outputs: torch.Tensor) -> dict:
    v = {"the state is not carried: every step starts from h0 instead of the previous step's h":
         _forward_variant(a, carry=False),
         "the outputs are shifted by one step: they hold h_0 … h_{T-1} (h0 included, the last "
         "state dropped) instead of h_1 … h_T":
         torch.cat([a["h0"].unsqueeze(1), outputs[:, :-1]], dim=1)}
    for phrase, kw in _STEP_VARIANTS.items():
        v[phrase] = _forward_variant(a, **kw)
    return v


# ----------------------------------------------------------------------------
# the checks

def check_rnn_step(rnn_step, hidden: bool = False) -> None:
    """rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh) -> h_t (B, H), computed as
    tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh) without torch's RNN modules."""
    cases = build_cases(hidden, STEP_PLAN)
    for case in cases:
        out = call_learner(rnn_step, case, "rnn_step", hint_on_error=_ON_SHAPES)
        B, H = case.sizes["B"], case.sizes["H"]
        # the docstring promises the inputs' dtype: float32 in, float64 out is wrong too
        validate(out, case, "rnn_step", "h_t", ("B", "H"), same_dtype=True,
                 shape_hints={(H,): "the batch axis is missing", (1, B, H): "drop the leading axis"})
        a = on_cpu64(case)
        variants = {p: _step(a["x_t"], a["h_prev"], a, **kw) for p, kw in _STEP_VARIANTS.items()}
        compare(out, _reference_step(a), case, "rnn_step", "h_t", variants, hint=_EQUATION)
    passed("rnn_step", cases, hidden)


def check_rnn_forward(rnn_forward, hidden: bool = False) -> None:
    """rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh) -> (outputs (B, T, H), h_T (B, H)),
    x batch-first (B, T, I); outputs[:, t] is the state after reading x[:, t]."""
    cases = build_cases(hidden, FORWARD_PLAN)
    # a forward that calls the learner's rnn_step fails first for a wrong rnn_step
    with helper_first(rnn_forward, "rnn_forward", "rnn_step", check_rnn_step):
        for case in cases:
            _check_forward_case(rnn_forward, case)
    passed("rnn_forward", cases, hidden)


def _check_forward_case(rnn_forward, case) -> None:
    result = call_learner(rnn_forward, case, "rnn_forward", hint_on_error=_ON_SHAPES)
    outputs, h_T = validate_items(result, case, "rnn_forward", ("outputs", "h_T"))
    B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
    validate(outputs, case, "rnn_forward", "outputs", ("B", "T", "H"), shape_hints={
        (B, T + 1, H): "one state too many: outputs hold h_1 … h_T, not h_0",
        (B, T - 1, H): "one state too few: outputs hold all T states h_1 … h_T",
        (T, B, H): "this is time-first; the course is batch-first: outputs[:, t] is a state",
        (B, H): "that is one state; outputs stacks all T of them along dim 1",
    })
    validate(h_T, case, "rnn_forward", "h_T", ("B", "H"), shape_hints={
        (1, B, H): "nn.RNN returns h_n with a leading layers axis; here h_T is just (B, H)",
        (B, T, H): "that is all the states; h_T is the last one",
    })
    a = on_cpu64(case)
    ref_out, ref_h = _reference_forward(a)
    compare(outputs, ref_out, case, "rnn_forward", "outputs", _forward_variants(a, ref_out))
    compare(h_T, ref_h, case, "rnn_forward", "h_T", {
        "h_T is h0 (the initial state) instead of the last state": a["h0"],
        "h_T is the first state h_1 instead of the last state h_T": ref_out[:, 0],
        "h_T is the state one step before the end (h_{T-1})":
            ref_out[:, -2] if ref_out.shape[1] > 1 else None,
    })


def _probs_variants(a: dict) -> dict:
    logits = a["h"] @ a["W_hy"].T + a["b_y"]  # (B, V)
    return {
        "the softmax is taken over dim 0 (the batch) instead of the last dim (the vocabulary)":
            torch.softmax(logits, dim=0),
        "you return log-probabilities (log_softmax) instead of probabilities":
            torch.log_softmax(logits, dim=-1),
        "you return the logits with no softmax": logits,
        "sigmoid is used instead of softmax": torch.sigmoid(logits),
        "b_y is left out": torch.softmax(logits - a["b_y"], dim=-1),
    }


def check_next_token_probs(next_token_probs, hidden: bool = False) -> None:
    """next_token_probs(h, W_hy, b_y) -> softmax(h @ W_hy.T + b_y) over the
    vocabulary, shape (B, V): each row a probability distribution."""
    cases = build_cases(hidden, PROBS_PLAN)
    for case in cases:
        out = call_learner(next_token_probs, case, "next_token_probs",
                           hint_on_error="W_hy is (V, H), so the logits are h @ W_hy.T + b_y.")
        B, V = case.sizes["B"], case.sizes["V"]
        validate(out, case, "next_token_probs", "probs", ("B", "V"),
                 shape_hints={(V, B): "transposed: one row per sequence in the batch"})
        a = on_cpu64(case)
        expected = _reference_probs(a)  # (B, V)
        compare(out, expected, case, "next_token_probs", "probs", _probs_variants(a),
                hint="each row should be softmax(h @ W_hy.T + b_y) and sum to 1.")
    passed("next_token_probs", cases, hidden)
