"""Checks for lesson 03 (vanishing and exploding gradients): jacobian_norms, clip_grad_norm_.

``jacobian_norms(states, W_hh)`` takes the states of a vanilla RNN (tanh, no
output layer) for a batch, ``states`` (B, T+1, H) with ``states[:, t]`` = h_t and
``states[:, 0]`` = h_0, and PyTorch's ``W_hh`` (H, H). It returns (B, T+1): entry
``[b, t]`` is the spectral norm (largest singular value) of dh_T/dh_t for sequence
b, the product of the step Jacobians J_k = diag(1 - h_k^2) W_hh for k = T down to
t+1; entry T is the norm of the identity, 1. The spectral norm is used because it
is the most a small change of h_t can be stretched on its way to h_T, and because
it tells the product of non-symmetric J_k from the product of their transposes
taken in the same order (the Frobenius norm would too; a single transpose of the
whole product would pass either way, and is a correct row-vector formulation).
The reference is autograd's Jacobian of h_T with respect to h_t, recomputed from
the inputs that produced the states.

``clip_grad_norm_(parameters, max_norm)`` must do what
``torch.nn.utils.clip_grad_norm_`` does with the default L2 norm, which is the
reference; torch's own clipping functions are blocked while the learner's runs.
"""
from __future__ import annotations

import torch

from rnncourse import functional as F
from rnncourse.checks.core import (
    Case, CheckFailed, Drawn, Parameters, Plan, build_cases, call_learner, close, compare,
    compare_scalar, on_cpu64, passed, randn, tolerance, validate, validate_scalar,
)
from rnncourse.guard import FROM_SCRATCH, TORCH_CLIPPING

_CHAIN = ("dh_T/dh_t = J_T J_{T-1} ... J_{t+1} with J_k = diag(1 - h_k^2) W_hh, where h_k = "
          "states[:, k] is the state step k produced; norms[:, T] is the norm of the identity, 1. "
          "torch.linalg.matrix_norm(P, ord=2) gives the spectral norm of a batch of matrices.")


# ----------------------------------------------------------------------------
# jacobian_norms: cases, the autograd reference, the wrong variants

def _rnn_inputs(gen: torch.Generator, s: dict) -> dict:
    """Inputs and weights of a tanh RNN; W_hh random normal (non-symmetric), scaled so
    the units are neither saturated nor linear: tanh' differs from unit to unit."""
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    return {"x": randn(gen, B, T, I), "h0": randn(gen, B, H, scale=0.8).tanh(),
            "W_ih": randn(gen, H, I, scale=0.7), "W_hh": randn(gen, H, H, scale=1.1 / H ** 0.5),
            "b": randn(gen, H, scale=0.3)}


def _step(x_t, h, a):
    # one bias is enough here; functional.rnn_cell takes both, so b_hh is zero
    return F.rnn_cell(x_t, h, a["W_ih"], a["W_hh"], a["b"], torch.zeros_like(a["b"]))  # (B, H)


def _states(a: dict) -> torch.Tensor:
    h, states = a["h0"], [a["h0"]]
    for t in range(a["x"].shape[1]):
        h = _step(a["x"][:, t], h, a)
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T+1, H), h_0 first


def autograd_jacobians(a: dict) -> torch.Tensor:
    """dh_T/dh_t for t = 0..T by autograd: rerun the RNN from h_t and differentiate.
    Returns (B, T+1, H, H). The sequences of a batch are independent, so the
    Jacobian of the batch sum of h_T's unit i with respect to h_t gives row i for all."""
    states = _states(a)
    B, T1, H = states.shape
    out = torch.empty(B, T1, H, H, dtype=torch.float64)
    for t in range(T1):
        h_t = states[:, t].detach().clone().requires_grad_(True)
        with torch.enable_grad():
            h = h_t
            for k in range(t, T1 - 1):  # steps t+1 .. T; none for t = T, where the Jacobian is I
                h = _step(a["x"][:, k], h, a)
            for i in range(H):
                (row,) = torch.autograd.grad(h[:, i].sum(), h_t, retain_graph=True)
                out[:, t, i] = row  # (B, H): row i of every sequence's Jacobian
    return out


def chain_norms(states: torch.Tensor, W_hh: torch.Tensor, transpose=False, no_diag=False,
                wrong_order=False, previous_h=False, tanh_twice=False, diag_right=False,
                frobenius=False, forward=False) -> torch.Tensor:
    """Norms of products of step Jacobians, correct with the defaults; each flag is one
    known mistake. states (B, T+1, H) -> (B, T+1)."""
    B, T1, H = states.shape
    W = W_hh.T if transpose else W_hh

    def J(k):  # the Jacobian of step k (1..T), (B, H, H)
        h = states[:, k - 1] if previous_h else states[:, k]
        d = torch.ones_like(h) if no_diag else 1 - (torch.tanh(h) if tanh_twice else h) ** 2
        return W * d[:, None, :] if diag_right else d[:, :, None] * W

    def norm(P):
        return torch.linalg.matrix_norm(P, ord="fro" if frobenius else 2)

    eye = torch.eye(H, dtype=states.dtype, device=states.device).expand(B, H, H)
    norms = torch.empty(B, T1, dtype=states.dtype, device=states.device)
    P = eye
    if forward:  # dh_t/dh_0 instead: products grow from the start of the sequence
        norms[:, 0] = norm(P)
        for k in range(1, T1):
            P = J(k) @ P
            norms[:, k] = norm(P)
        return norms
    norms[:, T1 - 1] = norm(P)
    for k in range(T1 - 1, 0, -1):
        P = J(k) @ P if wrong_order else P @ J(k)
        norms[:, k - 1] = norm(P)
    return norms


_CHAIN_VARIANTS = {
    "W_hh is transposed (J_k = diag(1 - h_k^2) W_hh.T): the Jacobian of h_k = tanh(W_hh h_{k-1} + ...) "
    "with respect to h_{k-1} has W_hh itself": dict(transpose=True),
    "the diag(1 - h_k^2) factor is left out (tanh' is missing, only powers of W_hh remain)": dict(no_diag=True),
    "the product is taken in the wrong order (J_{t+1} ... J_T instead of J_T ... J_{t+1}): "
    "going backwards from T, multiply the new factor on the right": dict(wrong_order=True),
    "J_k uses h_{k-1}, the step's input, instead of h_k, the state it produced (off by one): "
    "tanh'(z_k) = 1 - h_k^2": dict(previous_h=True),
    "tanh' is taken as 1 - tanh(h_k)^2: h_k is already the tanh of the pre-activation, so "
    "tanh'(z_k) = 1 - h_k^2": dict(tanh_twice=True),
    "the diagonal multiplies on the right (W_hh diag(1 - h_k^2)); the chain rule puts tanh' first: "
    "diag(1 - h_k^2) W_hh": dict(diag_right=True),
    "the Frobenius norm is used instead of the spectral norm (torch.linalg.matrix_norm(P, ord=2))":
        dict(frobenius=True),
    "the norms are of dh_t/dh_0 (products growing from the start) instead of dh_T/dh_t (from the end)":
        dict(forward=True),
}


def _chain_args(gen: torch.Generator, s: dict) -> Drawn:
    a = _rnn_inputs(gen, s)
    # the inputs that produced the states: the autograd reference reruns them
    return Drawn({"states": _states(a), "W_hh": a["W_hh"]}, context={"inputs": a})


# Sizes of 1 (one sequence of one step, one unit) and a meta-device run: matrix_norm runs
# there, so an identity made without device= shows. No gradient case: nothing trains
# through these norms.
CHAIN_PLAN = Plan("BTIH", _chain_args, ones="BTIH", meta=True)


def check_jacobian_norms(jacobian_norms, hidden: bool = False) -> None:
    """jacobian_norms(states (B, T+1, H), W_hh (H, H)) -> (B, T+1), the spectral norms of
    dh_T/dh_t for t = 0..T, compared with autograd's Jacobians."""
    cases = build_cases(hidden, CHAIN_PLAN)
    for case in cases:
        out = call_learner(jacobian_norms, case, "jacobian_norms", hint_on_error=_CHAIN)
        B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
        validate(out, case, "jacobian_norms", "norms", ("B", "T+1"), shape_hints={
            (B, T): "one entry too few: include t = T, where dh_T/dh_T is the identity, norm 1",
            (B, T + 1, H, H): "these look like the Jacobians themselves; return their norms",
            (B, T, H, H): "these look like the Jacobians themselves; return their norms (B, T+1)",
            (T + 1,): "the batch axis is missing: one row of norms per sequence",
            (T + 1, B): "transposed: one row per sequence, one column per time step",
        })
        expected = torch.linalg.matrix_norm(autograd_jacobians(case.context["inputs"]), ord=2)  # (B, T+1)
        a = on_cpu64(case)
        variants = {p: chain_norms(a["states"], a["W_hh"], **kw) for p, kw in _CHAIN_VARIANTS.items()}
        compare(out, expected, case, "jacobian_norms", "norms", variants, hint=_CHAIN)
    passed("jacobian_norms", cases, hidden)


# ----------------------------------------------------------------------------
# clip_grad_norm_

_NO_GRAD_HINT = ("Some parameters have no gradient (p.grad is None), e.g. a layer the loss did not "
                 "use: skip them, as torch.nn.utils.clip_grad_norm_ does.")


def _clip_args(gen: torch.Generator, s: dict) -> list:
    """Two cases from one draw of gradients: the total norm above max_norm with the
    parameters passed as a generator (as model.parameters() is), and below it,
    passed as a list. Every case has a parameter without a gradient (e.g. an
    output bias the loss never reached) and pairwise-different shapes."""
    shapes = [(s["H"], s["I"]), (s["H"],), (s["O"], s["H"]), (s["O"],)]
    grads = [randn(gen, *shape) for shape in shapes]
    grads[3] = None
    total = torch.sqrt(sum(g.pow(2).sum() for g in grads if g is not None)).item()
    cases = []
    for above in (True, False):
        max_norm = round(total * (0.35 if above else 1.7), 3)
        values = tuple(randn(gen, *shape) for shape in shapes)
        sizes = {"shapes": " ".join("x".join(map(str, sh)) for sh in shapes), "max_norm": max_norm,
                 "total norm": "above max_norm" if above else "below max_norm",
                 "passed as": "a generator" if above else "a list"}
        cases.append(Drawn({"parameters": Parameters(values, tuple(grads), one_shot=above),
                            "max_norm": max_norm}, sizes=sizes))
    return cases


# The fact the lesson quotes comes first: [3, 4] with max_norm 1 -> 5.0, [0.6, 0.8].
_THREE_FOUR_FIVE = Drawn(
    {"parameters": Parameters((torch.zeros(2, dtype=torch.float64),),
                              (torch.tensor([3.0, 4.0], dtype=torch.float64),)), "max_norm": 1.0},
    sizes={"grads": "[3, 4]", "max_norm": 1.0})
# A meta-device run: correct code may read the norm to decide (`if total > max_norm`),
# which the meta device cannot answer; such a run is inconclusive and passes, but an
# accumulator made on the CPU (torch.zeros(1)) is caught before the first read. Sizes
# of 1: parameters of shapes (H, 1), (1, H) and (1,).
CLIP_PLAN = Plan("IHO", _clip_args, fixed=(_THREE_FOUR_FIVE,), ones="IO", meta=True)


def _grads(params) -> list:
    return [None if p.grad is None else p.grad.detach().to("cpu", torch.float64).clone() for p in params]


def _clip_variants(grads: list, max_norm: float) -> dict:
    present = [g for g in grads if g is not None]
    total = torch.sqrt(sum(g.pow(2).sum() for g in present)).item()
    per_param = [None if g is None else g * min(1.0, max_norm / (g.norm().item() + 1e-6)) for g in grads]
    return {
        "each gradient is clipped by its own norm instead of the global norm of all gradients together":
            per_param,
        "the gradients are scaled to max_norm even though their norm is below it (clipping only ever "
        "scales down: coefficient min(1, max_norm / total))": [None if g is None else g * max_norm / total for g in grads],
        "each gradient is divided by the total norm without multiplying by max_norm":
            [None if g is None else g / total for g in grads],
        "the gradients were not changed: scale each p.grad in place (p.grad.mul_(coef)), the optimizer "
        "reads them from there. If you loop over `parameters` twice, a generator (model.parameters()) is "
        "empty the second time: make a list first": grads,
    }


def _check_grads(params, before: list, expected: list, case: Case, exercise: str) -> None:
    where = f"{exercise}, {case.label}"
    after = _grads(params)
    for i, (g, w) in enumerate(zip(after, expected)):
        if w is None and g is not None:
            raise CheckFailed(f"{where}: parameter {i} had no gradient and now has one. Leave p.grad "
                              "as None where it is None (an optimizer treats a zero gradient differently).")
        if w is not None and g is None:
            raise CheckFailed(f"{where}: parameter {i} lost its gradient (p.grad is None now).")
        if g is not None and g.shape != w.shape:
            raise CheckFailed(f"{where}: the gradient of parameter {i} has shape {tuple(g.shape)}, "
                              f"expected {tuple(w.shape)}: scale it, don't reshape it.")
    # scaling by max_norm / total instead of max_norm / (total + 1e-6) must pass
    atol, rtol = tolerance(case, kind="scaled")
    if close(after, expected, atol, rtol):
        return
    for phrase, wrong in _clip_variants(before, case.args["max_norm"]).items():
        if close(after, wrong, atol, rtol):
            raise CheckFailed(f"{where}: the clipped gradients are wrong. They match what you get if {phrase}.")
    errs = [float((g - w).abs().max()) for g, w in zip(after, expected) if w is not None]
    raise CheckFailed(f"{where}: the clipped gradients are wrong; the largest error is {max(errs):.3g}. "
                      "Compute total = sqrt(sum of every gradient's squared entries), then multiply every "
                      "gradient by max_norm / total when total > max_norm.")


def _check_total(out, before: list, expected: float, case: Case, exercise: str) -> None:
    if isinstance(out, torch.Tensor) and out.numel() != 1:
        raise CheckFailed(f"{exercise}, {case.label}: expected one number (a float or a 0-dim tensor), "
                          f"got a tensor of shape {tuple(out.shape)}: the norm is global, over all "
                          "parameters at once.")
    value = validate_scalar(out, case, exercise, "the total norm", missing=(
        "Return the total norm of the gradients before clipping, as torch.nn.utils.clip_grad_norm_ does."))
    present = [g for g in before if g is not None]
    max_norm = case.args["max_norm"]
    wrong = {
        "you return the norm after clipping; clip_grad_norm_ returns the total norm before clipping "
        "(that is the number worth logging: it shows how large the gradients really were)":
            expected * min(1.0, max_norm / (expected + 1e-6)),
        "you return the squared norm (the square root is missing)": expected ** 2,
        "you add the parameters' norms; the global norm is the square root of the sum of squares":
            sum(g.norm().item() for g in present),
        "you return the largest of the parameters' norms instead of the global norm":
            max(g.norm().item() for g in present),
        "you return the last parameter's norm instead of the global norm": present[-1].norm().item(),
        "you return the clipping coefficient max_norm / total": max_norm / expected,
    }
    compare_scalar(value, expected, case, exercise, "the returned norm", wrong,
                   advice="Return the global L2 norm of all gradients, measured before clipping.")


def check_clip_grad_norm_(clip_grad_norm_, hidden: bool = False) -> None:
    """clip_grad_norm_(parameters, max_norm) -> the total norm before clipping, with every
    gradient scaled in place exactly as torch.nn.utils.clip_grad_norm_ scales it."""
    cases = build_cases(hidden, CLIP_PLAN)
    for case in cases:
        params = list(case.args["parameters"].params)
        before = _grads(params)
        # the reference: torch's own function on copies, outside the blocked region
        copies = [p.detach().clone().requires_grad_(True) for p in params]
        for c, p in zip(copies, params):
            c.grad = None if p.grad is None else p.grad.clone()
        expected_total = float(torch.nn.utils.clip_grad_norm_(copies, case.args["max_norm"]))
        expected = _grads(copies)
        out = call_learner(clip_grad_norm_, case, "clip_grad_norm_", hint_on_error=_NO_GRAD_HINT,
                           blocks=(*FROM_SCRATCH, TORCH_CLIPPING))
        _check_grads(params, before, expected, case, "clip_grad_norm_")
        _check_total(out, before, expected_total, case, "clip_grad_norm_")
    passed("clip_grad_norm_", cases, hidden)
