r"""The LSTM time loop with a hand-written backward pass (BPTT).

Autograd through a Python loop records ~10 small nodes per step and replays
them in its backward. Here the forward runs without recording and the
backward walks the steps in reverse with the derivatives written out. On a
CPU the cost is memory traffic and the number of small operations per step,
not arithmetic, so:

* what the backward needs from each step (the gate slopes times the factor
  each gate's gradient is multiplied by, and ``dc_t/dh_t``) is computed in the
  forward loop while that step's gates are still in cache, not in passes over
  full ``(T, B, 4H)`` arrays afterwards; the gates themselves live in one small
  workspace;
* inside the backward loop a step's gate gradients are one broadcast multiply,
  and ``dh_{t-1}`` is accumulated straight into the previous step's output
  gradient with one in-place matmul;
* the recurrent weight gradient is one matmul over all steps,
  ``dW_hh = dgates^T @ h_prev``, since the previous states are the outputs;
* the input projection is done here as well, in one matmul, and its
  ``(T, B, 4H)`` buffer is reused: once step ``t`` has read its slot, the slot
  holds that step's backward factors. Fresh memory costs page faults, and this
  halves the large arrays of a forward pass.

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
    h, c, outs = h0, c0, []
    for g in (reversed(gx.split(B)) if reverse else gx.split(B)):  # views (B, 4H): no x[t]
        h, c = lstm_step(g, h, c, w_hh)
        outs.append(h)
    if reverse:
        outs.reverse()
    return torch.stack(outs), h, c  # (T, B, H), (B, H), (B, H)


def _plain(t: Tensor) -> bool:
    """False for the batched tensors vmap (legacy or torch.func) passes a backward."""
    from torch._C import _functorch
    return not (_functorch.is_legacy_batchedtensor(t) or _functorch.is_batchedtensor(t))


class LSTMScan(torch.autograd.Function):
    """``out, h_n, c_n = LSTMScan.apply(x, w_ih, bias, h0, c0, w_hh, reverse)``

    x: (T, B, I) time-major input; w_ih: (4H, I); bias: (4H,) both biases summed, or None
    h0, c0: (B, H); w_hh: (4H, H); reverse: run from the last step to the first
    out: (T, B, H), h_t of every step in time order; h_n, c_n: (B, H)

    The input projection is done here too, so that its buffer can be reused:
    step t reads gx_t once, and then the slot holds what the backward needs of
    step t. One (T, B, 4H) array instead of two is much less fresh memory.
    """

    @staticmethod
    def forward(ctx, x: Tensor, w_ih: Tensor, bias, h0: Tensor, c0: Tensor, w_hh: Tensor,
                reverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
        T, B, I = x.shape
        G, H = w_hh.shape
        x2 = x.reshape(T * B, I)
        gx = (x2 @ w_ih.t() if bias is None else torch.addmm(bias, x2, w_ih.t())).view(T, B, G)
        grad = any(ctx.needs_input_grad)
        out = x.new_empty(T, B, H)  # h_t
        gates = x.new_empty(B, G)  # one step's i, f, g, o: a small, cache-resident workspace
        if grad:
            # What the backward needs, computed here while each step's values are in cache
            # (passes over the full (T, B, 4H) arrays afterwards would be memory-bound):
            factor = gx  # per gate: slope x what dc (dh for o) multiplies; step t's slot is free once read
            dc_dh = x.new_empty(T, B, H)  # dc_t/dh_t = o (1 - tanh^2 c_t)
            fs = x.new_empty(T, B, H)  # forget gates, for dc_{t-1} = dc_t f
        w_t = w_hh.t().contiguous()  # (H, 4H): a contiguous right operand is the fast GEMM
        h, c = h0, c0
        for t in (range(T - 1, -1, -1) if reverse else range(T)):
            a = torch.mm(h, w_t, out=gates).add_(gx[t])  # (B, 4H): h_{t-1} W_hh^T + gx_t
            a[:, : 2 * H].sigmoid_()  # i, f
            a[:, 2 * H: 3 * H].tanh_()  # g
            a[:, 3 * H:].sigmoid_()  # o
            i, f, g, o = a.chunk(4, dim=1)  # each (B, H)
            c_new = torch.addcmul(f * c, i, g)  # f*c + i*g
            tc = torch.tanh(c_new)
            h = torch.mul(o, tc, out=out[t])  # o*tanh(c)
            if grad:
                fa = torch.addcmul(a, a, a, value=-1, out=factor[t])  # a(1-a): sigmoid slopes
                fi, ff, fg, fo = fa.chunk(4, dim=1)
                fi.mul_(g)  # i(1-i) g
                ff.mul_(c)  # f(1-f) c_{t-1}
                torch.addcmul(i, i * g, g, value=-1, out=fg)  # (1-g^2) i: tanh slope for g
                fo.mul_(tc)  # o(1-o) tanh(c)
                torch.addcmul(o, h, tc, value=-1, out=dc_dh[t])  # o - o tanh^2(c)
                fs[t] = f
            c = c_new
        if grad:
            ctx.save_for_backward(factor, dc_dh, fs, out, h0, w_hh, x, w_ih, bias, c0)
        ctx.reverse, ctx.has_bias = reverse, bias is not None
        return out, h.clone(), c

    @staticmethod
    def backward(ctx, d_out: Tensor, d_hn: Tensor, d_cn: Tensor):
        if torch.is_grad_enabled() or not all(_plain(d) for d in (d_out, d_hn, d_cn)):
            return LSTMScan._backward_by_autograd(ctx, d_out, d_hn, d_cn)
        factor, dc_dh, fs, out, h0, w_hh, x, w_ih, _, _ = ctx.saved_tensors
        reverse = ctx.reverse
        T, B, G = factor.shape
        H = G // 4
        dh = d_out.clone()  # (T, B, H): gradient reaching each h_t, completed as the loop goes
        dh[0 if reverse else T - 1] += d_hn
        dc = d_cn.clone()  # (B, H)
        dgates = torch.empty_like(factor)  # (T, B, 4H)
        dh0 = None
        for t in (range(T) if reverse else range(T - 1, -1, -1)):
            dc = torch.addcmul(dc, dh[t], dc_dh[t])  # (B, H): total dc_t
            d = dgates[t]  # (B, 4H)
            torch.mul(factor[t].view(B, 4, H), dc.unsqueeze(1), out=d.view(B, 4, H))
            torch.mul(factor[t, :, 3 * H:], dh[t], out=d[:, 3 * H:])  # o gets dh, not dc
            dc = dc * fs[t]  # to c_{t-1}
            prev = t + 1 if reverse else t - 1
            if 0 <= prev < T:
                dh[prev].addmm_(d, w_hh)  # (B, 4H) @ (4H, H): to h_{t-1}
            else:
                dh0 = d @ w_hh
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
        _, _, _, _, h0, w_hh, x, w_ih, bias, c0 = ctx.saved_tensors
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
