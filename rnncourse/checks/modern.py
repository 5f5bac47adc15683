r"""Checks for lesson 11 (modern recurrences): linear_recurrence, parallel_scan,
mingru and stream_step.

Shapes: a, b (B, T, H), h0 (B, H), the result h (B, T, H) with h[:, t] the state
after step t + 1 of h_t = a_t * h_{t-1} + b_t. minGRU: x (B, T, I), W_ih (2H, I)
with rows (z, h̃), b_ih (2H,):  z = sigmoid(x W_z^T + b_z), h̃ = x W_h^T + b_h,
h_t = (1 - z_t) h_{t-1} + z_t h̃_t.

References: :mod:`rnncourse.scan` and :mod:`rnncourse.mingru` (float64, CPU,
outside the blocked region). A parallel exercise must also be parallel:
:func:`operations` counts the tensor operations the learner's function issues
(every torch function, method and operator, through a ``TorchFunctionMode``) at
T = 16 and T = 1024. A scan's rounds grow like log2 T (4 against 10), a loop's
steps like T (16 against 1024): more than 3 times as many operations at the long
length is a loop in disguise. Any associative formulation (Hillis–Steele,
Blelloch, a recursive odd-even scan) passes. Each exercise also runs once on
torch's 'meta' device, which has no values, so a tensor created on the CPU by
mistake fails on a grader without a GPU.
"""
from __future__ import annotations

import dataclasses

import torch

from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, on_cpu64, passed, randn, validate,
)
from rnncourse.checks.parallel import (  # noqa: F401  (SHORT, LONG, GROWTH, operations: the notebook's)
    GROWTH, LONG, SHORT, check_gradients, check_meta, check_rounds, operations,
)
from rnncourse.checks.streaming import check_stream_step, stream_model, stream_variant  # noqa: F401
from rnncourse.mingru import mingru_coefficients
from rnncourse.scan import scan_rounds, scan_sequential

_SHAPES = "a and b are (B, T, H), batch-first; h0 is (B, H); return h of shape (B, T, H)."


# ----------------------------------------------------------------------------
# cases

def _scan_args(gen, s, T):
    """a in (-1, 1), mostly positive (gates are), b normal, h0 normal; T, B or H may be 1."""
    T, B, H = (T if isinstance(T, tuple) else (T, s["B"], s["H"]))
    a = torch.tanh(randn(gen, B, T, H, scale=1.2) + 0.8)
    return Drawn({"a": a, "b": randn(gen, B, T, H), "h0": randn(gen, B, H)}, sizes={"T": T, "B": B, "H": H})


# T powers of two and not, 1 included; (T, B, H) tuples draw sizes of 1 by hand. At T = 3000
# the products a_1 ... a_t underflow: the cumprod/cumsum shortcut divides by zero there.
SCAN_PLAN = Plan("BH", _scan_args, visible_seeds=(0, 1, 2), hidden_seeds=tuple(range(10, 19)),
                 variants=(5, (3000, 2, 3), (1, 3, 4), 13, 8, (7, 1, 1), 100, 2, 64))


def _reference_scan(args: dict) -> torch.Tensor:
    return scan_sequential(args["a"], args["b"], args["h0"])  # (B, T, H), float64


# ----------------------------------------------------------------------------
# known wrong variants

def scan_variant(a, b, h0, *, order_swapped=False, drop_h0=False, shift=0, rounds=0, swap_ab=False):
    """Hillis–Steele with one mistake per keyword (all off: the right answer).

    ``order_swapped``: the pair d steps back is treated as the LATER one,
    (A, B) <- (A A', A' B + B') with ' the earlier pair; ``shift``: the partner
    is d + shift steps back; ``rounds``: +1 / -1 round (or first round skipped
    with "skip_first"); ``swap_ab``: the roles of a and b exchanged."""
    if swap_ab:
        a, b = b, a
    T = a.shape[1]
    A = a
    Bv = b if drop_h0 else torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1)
    total = scan_rounds(T) + (rounds if isinstance(rounds, int) else 0)
    d = 2 if rounds == "skip_first" else 1
    for _ in range(total - (rounds == "skip_first")):
        back = d + shift
        if 0 < back < T:
            Ap = torch.cat([torch.ones_like(A[:, :back]), A[:, :-back]], dim=1)
            Bp = torch.cat([torch.zeros_like(Bv[:, :back]), Bv[:, :-back]], dim=1)
            if order_swapped:
                A, Bv = A * Ap, Ap * Bv + Bp
            else:
                A, Bv = A * Ap, A * Bp + Bv
        d *= 2
    return Bv


_SCAN_MISTAKES = {
    "the combine is applied in the wrong order: the pair d steps back is treated as the later "
    "map, (A, B) <- (A'A, A'B + B'), which is not the composition written (first the earlier "
    "map, then the later: (A'A, A B' + B))": dict(order_swapped=True),
    "the initial state h0 is dropped (fold it into the first step: b_1 <- a_1 h0 + b_1)": dict(drop_h0=True),
    "each round looks d + 1 steps back instead of d (an off-by-one shift between rounds)": dict(shift=1),
    "each round looks d - 1 steps back instead of d (an off-by-one shift between rounds)": dict(shift=-1),
    "the last round is missing (loop while d < T, doubling d from 1)": dict(rounds=-1),
    "the first round (offset 1) is skipped": dict(rounds="skip_first"),
    "a and b are swapped: h_t = b_t h_{t-1} + a_t": dict(swap_ab=True),
}


def _sequential_variants(a, b, h0) -> dict:
    def loop(step, h=h0):
        out = []
        for t in range(a.shape[1]):
            h = step(a[:, t], b[:, t], h)
            out.append(h)
        return torch.stack(out, 1)
    shifted = torch.cat([h0[:, None], scan_sequential(a, b, h0)[:, :-1]], dim=1)
    return {
        "the initial state h0 is dropped (the loop starts from zeros)": loop(lambda a_, b_, h: a_ * h + b_,
                                                                             torch.zeros_like(h0)),
        "a and b are swapped: h_t = b_t h_{t-1} + a_t": loop(lambda a_, b_, h: b_ * h + a_),
        "the states are shifted by one step: you return h_0 .. h_{T-1} instead of h_1 .. h_T": shifted,
        "b is inside the product: h_t = a_t (h_{t-1} + b_t)": loop(lambda a_, b_, h: a_ * (h + b_)),
    }


def scan_variants(args: dict, parallel: bool) -> dict:
    a, b, h0 = args["a"], args["b"], args["h0"]
    out = {p: scan_variant(a, b, h0, **kw) for p, kw in _SCAN_MISTAKES.items()} if parallel else {}
    out.update(_sequential_variants(a, b, h0))
    return out


# ----------------------------------------------------------------------------
# linear_recurrence(a, b, h0) and parallel_scan(a, b, h0)

def _round_args(T: int) -> dict:
    gen = torch.Generator().manual_seed(T)
    return {"a": torch.rand(2, T, 3, generator=gen, dtype=torch.float64),
            "b": torch.randn(2, T, 3, generator=gen, dtype=torch.float64),
            "h0": torch.randn(2, 3, generator=gen, dtype=torch.float64)}


def _check_scan(fn, exercise: str, hidden: bool, parallel: bool) -> None:
    cases = build_cases(hidden, SCAN_PLAN)
    for case in cases:
        out = call_learner(fn, case, exercise, hint_on_error=_SHAPES)
        B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
        validate(out, case, exercise, "h", ("B", "T", "H"), shape_hints={
            (B, T + 1, H): "that includes h0: return the T states after it, h_1 .. h_T",
            (B, H): "that is the last state only: return every state, (B, T, H)",
            (T, B, H): "time-first: keep the batch first, (B, T, H)"})
        args = on_cpu64(case)
        compare(out, _reference_scan(args), case, exercise, "h", scan_variants(args, parallel))
    check_meta(fn, exercise, _round_args(5), "h", (2, 5, 3))
    if parallel:
        check_rounds(fn, exercise, _round_args)
        check_gradients(fn, exercise, _round_args(11), scan_sequential, ("a", "b", "h0"))
    passed(exercise, cases, hidden)


def check_linear_recurrence(linear_recurrence, hidden: bool = False) -> None:
    """linear_recurrence(a, b, h0) -> h (B, T, H), h_t = a_t h_{t-1} + b_t."""
    _check_scan(linear_recurrence, "linear_recurrence", hidden, parallel=False)


def check_parallel_scan(parallel_scan, hidden: bool = False) -> None:
    """parallel_scan(a, b, h0) equals the recurrence for any T, and takes O(log T) rounds."""
    _check_scan(parallel_scan, "parallel_scan", hidden, parallel=True)


# ----------------------------------------------------------------------------
# mingru(x, h0, W_ih, b_ih)

def _mingru_args(gen, s, T):
    T, B, H = (T if isinstance(T, tuple) else (T, s["B"], s["H"]))
    I = s["I"]
    return Drawn({"x": randn(gen, B, T, I), "h0": randn(gen, B, H),
                  "W_ih": randn(gen, 2 * H, I, scale=0.7), "b_ih": randn(gen, 2 * H, scale=0.5)},
                 sizes={"T": T, "B": B, "H": H})


MINGRU_PLAN = Plan("BIH", _mingru_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13),
                   variants=(6, (1, 2, 3), 9, (12, 1, 1), 33))


def mingru_reference(x, h0, W_ih, b_ih):
    a, b, _ = mingru_coefficients(x, W_ih, b_ih)  # each (B, T, H)
    return scan_sequential(a, b, h0)


def mingru_variant(x, h0, W_ih, b_ih, *, swap_z=False, tanh=False, rows_swapped=False, drop_h0=False):
    k, cand = (x @ W_ih.T + b_ih).chunk(2, dim=-1)
    if rows_swapped:
        k, cand = cand, k
    z = torch.sigmoid(k)
    cand = torch.tanh(cand) if tanh else cand
    a, b = (z, (1 - z) * cand) if swap_z else (1 - z, z * cand)
    return scan_sequential(a, b, torch.zeros_like(h0) if drop_h0 else h0)


_MINGRU_MISTAKES = {
    "(1 - z) and z are swapped: h_t = z_t h_{t-1} + (1 - z_t) h̃_t (PyTorch's GRU convention; the "
    "minGRU's z weights the candidate)": dict(swap_z=True),
    "the candidate goes through tanh; in the minGRU it is linear, h̃_t = x_t W_h^T + b_h": dict(tanh=True),
    "the row blocks are read as (h̃, z) instead of (z, h̃)": dict(rows_swapped=True),
    "h0 is dropped": dict(drop_h0=True),
}


def _not_affine_in_h0(fn, case) -> bool:
    """The minGRU's states are affine in h0: f(2 h0) - f(0) = 2 (f(h0) - f(0))."""
    outs = []
    for scale in (0.0, 1.0, 2.0):
        args = dict(case.args)
        args["h0"] = case.args["h0"] * scale
        c = dataclasses.replace(case, args=args)
        outs.append(call_learner(fn, c, "mingru").detach().to("cpu", torch.float64))
    if any(o.shape != outs[0].shape for o in outs):
        return False
    return not torch.allclose(outs[2] - outs[0], 2 * (outs[1] - outs[0]), atol=1e-4, rtol=1e-3)


def check_mingru(mingru, hidden: bool = False) -> None:
    """mingru(x, h0, W_ih, b_ih) -> h (B, T, H), the minGRU's states by a parallel scan."""
    cases = build_cases(hidden, MINGRU_PLAN)
    hint = "x is (B, T, I), h0 (B, H), W_ih (2H, I) with rows (z, h̃), b_ih (2H,); return h (B, T, H)."
    for case in cases:
        out = call_learner(mingru, case, "mingru", hint_on_error=hint)
        validate(out, case, "mingru", "h", ("B", "T", "H"))
        a = on_cpu64(case)
        want = mingru_reference(**a)
        variants = {p: mingru_variant(**a, **kw) for p, kw in _MINGRU_MISTAKES.items()}
        try:
            compare(out, want, case, "mingru", "h", variants)
        except CheckFailed as e:
            if "It matches what you get if" not in str(e) and _not_affine_in_h0(mingru, case):
                raise CheckFailed(
                    f"mingru, {case.label}: h is wrong, and not an affine function of h0 as a minGRU's "
                    "states are: something reads h_{t-1} through a nonlinearity, most likely the gate fed "
                    "h_{t-1} (as the GRU's z is). Then the recurrence is no longer linear and cannot be "
                    "scanned; in the minGRU, z_t and h̃_t read x_t only.") from None
            raise
    make = lambda T: {"x": _round_args(T)["b"][..., :2], "h0": _round_args(T)["h0"],  # noqa: E731
                      "W_ih": torch.linspace(-1, 1, 12, dtype=torch.float64).view(6, 2),
                      "b_ih": torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)}
    check_meta(mingru, "mingru", make(5), "h", (2, 5, 3))
    check_rounds(mingru, "mingru", make)
    check_gradients(mingru, "mingru", make(9), mingru_reference, ("x", "h0", "W_ih", "b_ih"))
    passed("mingru", cases, hidden)


