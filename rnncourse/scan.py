r"""The linear recurrence :math:`h_t = a_t \odot h_{t-1} + b_t`, computed three ways.

Lesson 11. When a recurrent layer's gates read only the input :math:`x_t` (never
:math:`h_{t-1}`), every :math:`a_t` and :math:`b_t` can be computed for all steps at
once, and what is left is this *linear* recurrence. It is the heart of minGRU and
minLSTM (:mod:`rnncourse.mingru`) and, with other twists, of S4, Mamba and RWKV.

Shape legend: ``B`` batch, ``T`` time steps, ``H`` features (any trailing shape
``*`` works the same way: every feature is its own scalar recurrence).

* ``a``, ``b``: ``(B, T, *)``, batch-first; ``a[:, t]`` and ``b[:, t]`` are
  :math:`a_{t+1}, b_{t+1}` (the course counts steps from 1, tensors from 0);
* ``h0``: ``(B, *)`` or None (zeros);
* result ``h``: ``(B, T, *)``, ``h[:, t]`` the state after step ``t + 1``
  (:math:`h_1 \dots h_T`; :math:`h_0` is not repeated).

The three forms compute the same function:

* :func:`scan_sequential`: the loop, :math:`T` dependent steps;
* :func:`scan_parallel`: Hillis and Steele's scan of the pairs :math:`(a_t, b_t)`
  under the associative combine of :func:`combine`,
  :math:`(a, b) \circ (a', b') = (a' a,\; a' b + b')` ("first :math:`(a, b)`, then
  :math:`(a', b')`"): :math:`\lceil \log_2 T \rceil` rounds, each one elementwise
  pass over all :math:`T` steps at once (:math:`O(T \log T)` work);
* :func:`scan_log`: Heinsen's (2023) log-space form,
  :math:`h_t = a^*_t \big(h_0 + \sum_{k \le t} b_k / a^*_k\big)` with
  :math:`a^*_t = \prod_{k \le t} a_k`, evaluated as
  :math:`\log h_t = \log a^*_t + \operatorname{logcumsumexp}_k(\log b_k - \log a^*_k)`
  so that the products, which underflow after a few hundred steps in the plain
  form, never leave log space. Negative :math:`b` are handled by complex
  logarithms (:math:`\log(-x) = \log x + i\pi`); it needs :math:`a_t > 0` and
  takes :math:`\log a_t` directly (minGRU's :math:`\log(1 - z_t)` is
  :math:`-\operatorname{softplus}(k_t)`, exact where :math:`1 - z_t` would round to 0).

All three are device- and dtype-agnostic, differentiable, and never write into
their inputs. Pitfalls: the combine is associative but not commutative (which pair
is earlier matters); the initial state enters through the first pair only
(:math:`b_1 \leftarrow a_1 h_0 + b_1`); the shortcut
``cumprod``/``cumsum`` of :math:`b_k / a^*_k` is the same algebra as :func:`scan_log`
outside log space and overflows or divides by zero on long sequences.
"""
from __future__ import annotations

from typing import Callable, List, Optional, Tuple

import torch
from torch import Tensor

from .guard import check_reference_allowed
from .validation import ShapeError, check_tensor

Pair = Tuple[Tensor, Tensor]


def _check(a: Tensor, b: Tensor, h0: Optional[Tensor], a_name: str = "a") -> None:
    check_tensor(a_name, a)
    check_tensor("b", b)
    if a.dim() < 2:
        raise ShapeError(f"{a_name} must be (B, T, *): batch-first, at least 2-D, got shape {tuple(a.shape)}")
    if a.shape != b.shape:
        raise ShapeError(f"{a_name} and b must have the same shape (B, T, *), got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    if not (a.is_floating_point() and b.is_floating_point()):
        raise TypeError(f"{a_name} and b must be floating-point, got {a.dtype} and {b.dtype}")
    if h0 is not None:
        check_tensor("h0", h0)
        want = (a.shape[0],) + tuple(a.shape[2:])
        if tuple(h0.shape) != want:
            raise ShapeError(f"h0 must have shape (B, *) = {want}, got {tuple(h0.shape)}")


def combine(earlier: Pair, later: Pair) -> Pair:
    r"""Compose two affine maps :math:`h \mapsto a h + b`: first ``earlier``, then ``later``.

    :math:`(a, b) \circ (a', b') = (a' a,\; a' b + b')`, since
    :math:`a'(a h + b) + b' = (a' a) h + (a' b + b')`. Associative (composition of
    maps), not commutative: swapping the arguments gives :math:`(a a', a b' + b)`,
    a different map.
    """
    a1, b1 = earlier
    a2, b2 = later
    return a2 * a1, a2 * b1 + b2


def _fold_h0(a: Tensor, b: Tensor, h0: Optional[Tensor]) -> Tensor:
    """b with the initial state folded into its first step: b_1 <- a_1 h0 + b_1."""
    if h0 is None:
        return b
    first = a[:, :1] * h0.unsqueeze(1) + b[:, :1]  # (B, 1, *)
    return torch.cat([first, b[:, 1:]], dim=1)  # (B, T, *)


def scan_sequential(a: Tensor, b: Tensor, h0: Optional[Tensor] = None) -> Tensor:
    r"""The loop: :math:`h_t = a_t h_{t-1} + b_t` for :math:`t = 1 \dots T`. Returns (B, T, *)."""
    check_reference_allowed("scan.scan_sequential")
    _check(a, b, h0)
    h = torch.zeros_like(b[:, 0]) if h0 is None else h0  # (B, *)
    states = []
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):  # unbind: views, no O(T^2) backward
        h = a_t * h + b_t  # (B, *): needs the previous h, so one step after another
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T, *)


def scan_rounds(T: int) -> int:
    """Rounds of :func:`scan_parallel` for length T: ceil(log2 T) (0 for T = 1)."""
    return max(int(T) - 1, 0).bit_length()


def _shifted(x: Tensor, d: int, fill: float) -> Tensor:
    """x moved d steps later along time, the first d steps set to ``fill``: x[:, t - d]."""
    pad = torch.full_like(x[:, :d], fill)  # (B, d, *)
    return torch.cat([pad, x[:, :-d]], dim=1)


def scan_parallel(a: Tensor, b: Tensor, h0: Optional[Tensor] = None,
                  on_round: Optional[Callable[[int, Tensor, Tensor], None]] = None) -> Tensor:
    r"""Hillis and Steele's inclusive scan of the pairs :math:`(a_t, b_t)`: (B, T, *).

    After round :math:`r` (offset :math:`d = 2^{r-1}`), position :math:`t` holds the
    composition of the :math:`\min(2^r, t)` steps ending at :math:`t`; each round
    combines it with the pair :math:`d` steps earlier (identity :math:`(1, 0)`
    before the start). After :math:`\lceil \log_2 T \rceil` rounds every
    position holds :math:`h_0 \mapsto h_t`, and :math:`h_0` was folded into step 1,
    so its :math:`b` part is :math:`h_t`. ``on_round(r, A, B)`` is called after
    every round (0 = the input), for pictures of the scan.
    """
    check_reference_allowed("scan.scan_parallel")
    _check(a, b, h0)
    A, Bv = a, _fold_h0(a, b, h0)  # (B, T, *) each
    T = a.shape[1]
    if on_round:
        on_round(0, A, Bv)
    d, r = 1, 0
    while d < T:  # ceil(log2 T) rounds
        A_prev, B_prev = _shifted(A, d, 1.0), _shifted(Bv, d, 0.0)  # the pair d steps earlier
        A, Bv = combine((A_prev, B_prev), (A, Bv))  # earlier first: not commutative
        d, r = 2 * d, r + 1
        if on_round:
            on_round(r, A, Bv)
    return Bv


def scan_log(log_a: Tensor, b: Tensor, h0: Optional[Tensor] = None) -> Tensor:
    r"""Heinsen's log-space scan; ``log_a`` is :math:`\log a_t` (so :math:`a_t > 0`). (B, T, *).

    .. math::
        \log h_t = \log a^*_t + \operatorname{logcumsumexp}_{k=0..t}\big(\log b_k - \log a^*_k\big),
        \qquad \log a^*_t = \sum_{k \le t} \log a_k,

    with :math:`b_0 = h_0` and :math:`a^*_0 = 1`. Logarithms of the signed
    :math:`b` are complex (:math:`\log|b| + i\pi` for negatives); the result is the real
    part of :math:`\exp(\log h_t)`. A zero :math:`b` is :math:`\log 0 = -\infty`, which
    logcumsumexp accepts.
    """
    check_reference_allowed("scan.scan_log")
    _check(log_a, b, h0, a_name="log_a")
    B_, T = b.shape[0], b.shape[1]
    cplx = torch.complex128 if b.dtype == torch.float64 else torch.complex64
    log_a_star = torch.cumsum(log_a, dim=1)  # (B, T, *)
    zero = torch.zeros_like(log_a_star[:, :1])  # log a*_0 = log 1
    log_a_star = torch.cat([zero, log_a_star], dim=1)  # (B, T+1, *)
    first = torch.zeros_like(b[:, :1]) if h0 is None else h0.unsqueeze(1)  # (B, 1, *)
    values = torch.cat([first, b], dim=1).to(cplx)  # (B, T+1, *): b_0 = h0, then b_1..b_T
    log_h = log_a_star + torch.logcumsumexp(torch.log(values) - log_a_star, dim=1)  # (B, T+1, *)
    return torch.exp(log_h).real[:, 1:].to(b.dtype)  # (B, T, *)


def round_states(a: Tensor, b: Tensor, h0: Optional[Tensor] = None) -> List[Pair]:
    """(A, B) after each round of :func:`scan_parallel` (round 0 is the input):
    the data of the picture of the scan's rounds."""
    kept: List[Pair] = []
    scan_parallel(a, b, h0, on_round=lambda r, A, Bv: kept.append((A.detach(), Bv.detach())))
    return kept


def reaches(T: int) -> List[List[Tuple[int, int]]]:
    """For each round r >= 1 of the Hillis–Steele scan over T steps, the pairs
    (from, to) it combines: position ``to`` takes in what position ``from`` holds.
    Pure bookkeeping (no tensors), for drawing the rounds."""
    out, d = [], 1
    while d < T:
        out.append([(t - d, t) for t in range(d, T)])
        d *= 2
    return out


SCANS = {"sequential": scan_sequential, "parallel": scan_parallel}
