r"""The LSTM time loop with a hand-written backward pass (BPTT).

Autograd through a Python loop records ~10 small nodes per step and replays
them in its backward. Here the forward runs without recording and the
backward walks the steps in reverse with the derivatives written out. On a
CPU, once the matmuls are done well, the cost is the NUMBER of small
operations per step (each call costs microseconds whatever its size), so:

* the input projection ``x_t W_ih^T + b`` of all steps is one matmul, and
  step ``t`` turns its slot of that ``(T, B, 4H)`` buffer into its gates in
  place (``addmm_``, then the activations): the gates are saved for the
  backward at no extra cost;
* one sigmoid activates all four gates: ``tanh(a) = 2 sigmoid(2a) - 1``, with
  the g rows of the weights doubled once per call. torch's CPU tanh kernel
  is several times slower than its sigmoid, and this needs no tanh at all
  (``tanh(c_t)`` is computed the same way);
* every per-step view is made once, by ``unbind``, outside the loop;
* the backward's per-step factors (each gate's slope times its partner in
  the cell update) are computed for blocks of steps (~1 MB) just before the
  loop reaches them: a few ops per block, data still in cache. The buffer
  they are written to then becomes ``dgates`` in place;
* inside the backward loop a step is five ops: ``dc`` gathers ``dh``, the
  gate gradients are two in-place multiplies, ``dc`` passes the forget gate,
  and ``dh_{t-1}`` is accumulated straight into the previous step's output
  gradient with one in-place matmul;
* the weight gradients are one matmul each over all steps,
  ``dW_hh = dgates^T @ h_prev`` (the previous states are the outputs).

It serves full batches (every sequence ``T`` steps); packed input of uneven
lengths goes through the autograd loop in :mod:`rnncourse.rnn_base`. The
equations are those of :func:`rnncourse.functional.lstm_step`, and the tests
check both paths against torch.nn, gradients included.

Higher-order gradients. A hand-written backward is a function autograd cannot
see into: with ``create_graph=True`` its result would carry no graph, and a
gradient penalty or Hessian-vector product would be silently wrong. So the
backward takes the hand-written path only for a plain first-order gradient.
When autograd records the backward (``create_graph=True``) or runs it
batched (``vmap``, e.g. ``gradcheck``'s batched-gradient check,
``autograd.grad(..., is_grads_batched=True)``), it recomputes the forward
with :func:`lstm_scan` (autograd through ``lstm_step``) and differentiates
that, a graph autograd can differentiate again. Ordinary training never pays
for it.

Derivatives of one step (``tc = tanh(c_t)``; ``dh``, ``dc`` arrive from the
next step and from the output):

.. math::
    dc \mathrel{+}= dh \odot o \odot (1 - tc^2)\\
    d\text{gates} = [dc \odot g \odot i(1-i),\ dc \odot c_{t-1} \odot f(1-f),\
                     dc \odot i \odot (1-g^2),\ dh \odot tc \odot o(1-o)]\\
    dh_{t-1} = d\text{gates}\, W_{hh} \qquad dc_{t-1} = dc \odot f
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .functional import lstm_step


def lstm_scan(x: Tensor, w_ih: Tensor, bias: Optional[Tensor], h0: Tensor, c0: Tensor,
              w_hh: Tensor, reverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
    """The plain loop :class:`LSTMScan` computes, differentiated by autograd.

    Same arguments and results as ``LSTMScan.apply``. It is the backward's
    fallback for higher-order and batched gradients, and the tests' reference.
    """
    T, B, I = x.shape
    gx = x.reshape(T * B, I) @ w_ih.t()  # (T*B, 4H)
    if bias is not None:
        gx = gx + bias
    steps = gx.view(T, B, gx.shape[-1]).unbind(0)  # T views (B, 4H): never index x[t]
    h, c, outs = h0, c0, []
    for g in (reversed(steps) if reverse else steps):
        h, c = lstm_step(g, h, c, w_hh)
        outs.append(h)
    if reverse:
        outs.reverse()
    return torch.stack(outs), h, c  # (T, B, H), (B, H), (B, H)


# The backward computes its per-step factors for this many gate values at a time
# (~1 MB of float32): big enough that the ops are few, small enough to stay in cache.
BLOCK_ELEMENTS = 1 << 18


# vmap's batched tensors (legacy ones for autograd.grad(is_grads_batched=True), and
# torch.func's), as far as this torch version can tell them apart.
_BATCHED = [getattr(torch._C._functorch, name) for name in
            ("is_legacy_batchedtensor", "is_batchedtensor") if hasattr(torch._C._functorch, name)]


def _plain(t: Tensor) -> bool:
    """False for the batched tensors vmap passes a backward: the hand-written one
    writes into preallocated buffers (out=, in place), which vmap cannot batch."""
    return not any(is_batched(t) for is_batched in _BATCHED)


def _factors(gates: Tensor, c_prev: Tensor, tanh_c: Tensor, h: Tensor, factor: Tensor,
             dc_dh: Tensor) -> None:
    """What each gate's gradient is multiplied by, for a block of steps (S, B, .):
    the slope of its activation times its partner in the cell update.

    factor (S, B, 4H) <- [i(1-i) g, f(1-f) c_{t-1}, (1-g^2) i, o(1-o) tanh(c_t)]
    dc_dh (S, B, H) <- o (1 - tanh^2(c_t)), the path from h_t to c_t
    """
    i, f, g, o = gates.chunk(4, dim=-1)
    fi, ff, fg, fo = factor.chunk(4, dim=-1)
    torch.addcmul(gates, gates, gates, value=-1, out=factor)  # a(1-a): the sigmoid slopes
    fi.mul_(g)
    ff.mul_(c_prev)
    torch.addcmul(i, i * g, g, value=-1, out=fg)  # i (1 - g^2): tanh's slope, times i
    fo.mul_(tanh_c)
    torch.addcmul(o, h, tanh_c, value=-1, out=dc_dh)  # o - o tanh^2(c), since h = o tanh(c)


class LSTMScan(torch.autograd.Function):
    """``out, h_n, c_n = LSTMScan.apply(x, w_ih, bias, h0, c0, w_hh, reverse)``

    x: (T, B, I) time-major input; w_ih: (4H, I); bias: (4H,) both biases summed, or None
    h0, c0: (B, H); w_hh: (4H, H); reverse: run from the last step to the first
    out: (T, B, H), h_t of every step in time order; h_n, c_n: (B, H)
    """

    @staticmethod
    def forward(ctx, x: Tensor, w_ih: Tensor, bias, h0: Tensor, c0: Tensor, w_hh: Tensor,
                reverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
        T, B, I = x.shape
        G, H = w_hh.shape
        # tanh(a) = 2 sigmoid(2a) - 1, and on a CPU torch's sigmoid kernel is several times
        # faster than its tanh. So the g rows of the weights are doubled (a copy, once per
        # call): one sigmoid then activates all four gates, and g = 2 s - 1 is one add.
        scale = x.new_ones(G, 1)
        scale[2 * H: 3 * H] = 2.0
        w_ih2, w_hh2 = w_ih * scale, w_hh * scale  # (4H, I), (4H, H)
        x2 = x.reshape(T * B, I)
        # gx_t = x_t W_ih^T + b for all steps at once; step t then turns its slot into its gates.
        gates = (x2 @ w_ih2.t() if bias is None
                 else torch.addmm(bias * scale[:, 0], x2, w_ih2.t())).view(T, B, G)
        minus_one = x.new_full((B, H), -1.0)  # full size: a broadcast operand is a slow kernel
        cells = x.new_empty(T + 1, B, H)  # c_t, plus c0 in the slot before the first step
        tanh_c = x.new_empty(T, B, H)  # tanh(c_t)
        out = x.new_empty(T, B, H)  # h_t
        if reverse:  # the first step is t = T-1: its c_{t-1} is slot T
            cells[T] = c0
            cs = cells[:T]
        else:
            cells[0] = c0
            cs = cells[1:]
        # Per-step views, made once in C++: indexing inside the loop costs more than the math.
        A = gates.unbind(0)  # (B, 4H): gx_t, then h_{t-1} W_hh^T added, then activated
        I_, F_, GG, O = (gates[..., k * H: (k + 1) * H].unbind(0) for k in range(4))
        C, TC, OUT = cs.unbind(0), tanh_c.unbind(0), out.unbind(0)
        w_t = w_hh2.t()  # (H, 4H) view: in-place addmm_ measured as fast as or faster than a copy
        h, c = h0, c0
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            a = A[t].addmm_(h, w_t)  # gx_t + h_{t-1} W_hh^T, in place (g rows doubled)
            a.sigmoid_()  # i, f, o; and sigmoid(2 a_g) in g's slot
            g = torch.add(minus_one, GG[t], alpha=2, out=GG[t])  # g = 2 s - 1 = tanh(a_g)
            c = torch.mul(F_[t], c, out=C[t]).addcmul_(I_[t], g)  # c_t = f c_{t-1} + i g
            tc = torch.add(c, c, out=TC[t]).sigmoid_()  # sigmoid(2 c_t); c + c: no scalar to wrap
            tc = torch.add(minus_one, tc, alpha=2, out=tc)  # tanh(c_t)
            h = torch.mul(O[t], tc, out=OUT[t])  # h_t = o tanh(c_t)
        if any(ctx.needs_input_grad):
            ctx.save_for_backward(gates, cells, tanh_c, out, h0, w_hh, x, w_ih, bias, c0)
        ctx.reverse, ctx.has_bias = reverse, bias is not None
        return out, h.clone(), c.clone()

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hn: Tensor, d_cn: Tensor):
        if torch.is_grad_enabled() or not all(_plain(d) for d in (d_out, d_hn, d_cn)):
            return LSTMScan._backward_by_autograd(ctx, d_out, d_hn, d_cn)
        gates, cells, tanh_c, out, h0, w_hh, x, w_ih, _, _ = ctx.saved_tensors
        reverse = ctx.reverse
        T, B, G = gates.shape
        H = G // 4
        c_prev = cells[1:] if reverse else cells[:T]  # (T, B, H): c_{t-1} of step t
        # dgates_t = factor_t * [dc_t, dc_t, dc_t, dh_t]; the factors are computed in
        # blocks of steps just before the loop reaches them (few ops, data in cache),
        # into the buffer that then holds dgates in place.
        dgates = torch.empty_like(gates)  # (T, B, 4H)
        dc_dh = torch.empty_like(tanh_c)  # (T, B, H): dc_t/dh_t = o (1 - tanh^2 c_t)
        block = max(1, BLOCK_ELEMENTS // max(1, B * G))  # steps per block
        dh = torch.empty_like(out).copy_(d_out)  # (T, B, H) contiguous: grad reaching each h_t
        dh[0 if reverse else T - 1] += d_hn
        dc = d_cn.clone()  # (B, H), updated in place
        dcu = dc.unsqueeze(1)  # (B, 1, H) view: dc broadcast over the i, f, g gates
        DH, M = dh.unbind(0), dc_dh.unbind(0)
        D3 = dgates.view(T, B, 4, H)[:, :, :3].unbind(0)  # (B, 3, H): i, f, g
        DO = dgates[..., 3 * H:].unbind(0)  # (B, H): o
        DG, F_ = dgates.unbind(0), gates[..., H: 2 * H].unbind(0)
        dh0 = None
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            if (T - 1 - t if not reverse else t) % block == 0:  # first step of a block
                lo, hi = (t, min(T, t + block)) if reverse else (max(0, t - block + 1), t + 1)
                _factors(gates[lo:hi], c_prev[lo:hi], tanh_c[lo:hi], out[lo:hi],
                         dgates[lo:hi], dc_dh[lo:hi])
            dc.addcmul_(DH[t], M[t])  # total dc_t
            D3[t].mul_(dcu)  # i, f, g: factor * dc_t
            DO[t].mul_(DH[t])  # o: factor * dh_t
            dc.mul_(F_[t])  # to c_{t-1}
            prev = t + 1 if reverse else t - 1
            if 0 <= prev < T:
                DH[prev].addmm_(DG[t], w_hh)  # (B, 4H) @ (4H, H): to h_{t-1}
            else:
                dh0 = DG[t] @ w_hh
        d_w = None
        if ctx.needs_input_grad[5]:
            # dW_hh = sum_t dgates_t^T h_{t-1}: all steps but the first in one matmul
            # (their h_{t-1} are outputs, a contiguous block), plus the step from h0.
            first = T - 1 if reverse else 0
            rest = slice(0, T - 1) if reverse else slice(1, T)
            prev = slice(1, T) if reverse else slice(0, T - 1)
            d_w = dgates[rest].reshape(-1, G).t() @ out[prev].reshape(-1, H)  # (4H, H)
            d_w.addmm_(dgates[first].t(), h0)
        # The input projection's gradients: dgates is d(gx).
        dgx = dgates.view(T * B, G)
        need = ctx.needs_input_grad
        d_x = (dgx @ w_ih).view_as(x) if need[0] else None  # (T, B, I)
        d_w_ih = dgx.t() @ x.reshape(T * B, x.shape[-1]) if need[1] else None  # (4H, I)
        d_bias = dgx.sum(0) if ctx.has_bias and need[2] else None  # (4H,)
        return d_x, d_w_ih, d_bias, dh0, dc, d_w, None

    @staticmethod
    def _backward_by_autograd(ctx, d_out: Tensor, d_hn: Tensor, d_cn: Tensor):
        """The backward as a graph: recompute with :func:`lstm_scan` and let autograd
        differentiate it, recording (``create_graph=True``) if grad mode is on.
        The saved inputs keep their own history, so a second derivative reaches
        the weights, the input and the incoming gradients alike."""
        h0, w_hh, x, w_ih, bias, c0 = ctx.saved_tensors[4:]
        inputs = (x, w_ih, bias, h0, c0, w_hh)
        wanted = [i for i, t in enumerate(inputs) if t is not None and ctx.needs_input_grad[i]]
        with torch.enable_grad():
            outs = lstm_scan(x, w_ih, bias, h0, c0, w_hh, ctx.reverse)
        grads = torch.autograd.grad(outs, [inputs[i] for i in wanted], (d_out, d_hn, d_cn),
                                    create_graph=torch.is_grad_enabled(), allow_unused=True)
        result = [None] * 7
        for i, g in zip(wanted, grads):
            result[i] = torch.zeros_like(inputs[i]) if g is None else g
        return tuple(result)
