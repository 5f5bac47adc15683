r"""The LSTM time loop with a hand-written backward pass (BPTT).

Autograd through a Python loop records ~10 small nodes per step, and its
backward computes the recurrent weight gradient one step at a time. Here the
forward runs without recording, and the backward walks the steps in reverse
with the derivatives written out, collecting the gate gradients of all steps;
the weight gradient is then ONE matmul, ``dW_hh = dgates^T @ h_prev``. This
brings the reference LSTM to about torch.nn.LSTM's speed on the CPU (see
benchmarks/bench_models.py). The equations are those of
:func:`rnncourse.functional.lstm_step`; the tests check both against torch.nn.

Derivatives of one step (``tc = tanh(c_t)``; ``dh``, ``dc`` arrive from later
steps and from the outputs):

.. math::
    do = dh \odot tc \qquad dc \mathrel{+}= dh \odot o \odot (1 - tc^2)\\
    di = dc \odot g \qquad dg = dc \odot i \qquad df = dc \odot c_{t-1}\\
    d\text{gates} = [di\, i(1-i),\ df\, f(1-f),\ dg\,(1-g^2),\ do\, o(1-o)]\\
    dh_{t-1} = d\text{gates}\, W_{hh} \qquad dc_{t-1} = dc \odot f

Packed layout (``sizes``: rows per step, non-increasing) works in both
directions through one trick: the state lives in full ``(B, H)`` buffers and
step ``t`` reads and writes only its first ``b_t`` rows. Sequences that have
ended keep their final state untouched; in the reverse direction, sequences
that have not started yet still hold their h0. The backward uses the same
buffers for ``dh``/``dc``.
"""
from __future__ import annotations

from typing import List, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


class LSTMScan(torch.autograd.Function):
    """``out, h_n, c_n = LSTMScan.apply(gx, h0, c0, w_hh, sizes, reverse)``

    gx: (N, 4H) input projections with both biases, packed layout
    h0, c0: (B, H); w_hh: (4H, H); sizes: list of T ints (b_t); reverse: bool
    out: (N, H) packed like gx; h_n, c_n: (B, H)
    """

    @staticmethod
    def forward(ctx, gx: Tensor, h0: Tensor, c0: Tensor, w_hh: Tensor,
                sizes: List[int], reverse: bool) -> Tuple[Tensor, Tensor, Tensor]:
        N, H = gx.shape[0], h0.shape[1]
        acts = gx.new_empty(N, 4 * H)  # gate activations i, f, g, o of every row
        cs = gx.new_empty(N, H)  # c_t of every row
        out = gx.new_empty(N, H)  # h_t of every row
        h_prev = gx.new_empty(N, H)  # h_{t-1} of every row, for dW_hh and dgates
        c_prev = gx.new_empty(N, H)  # c_{t-1} of every row, for df
        h, c = h0.clone(), c0.clone()  # (B, H) state buffers, updated in place
        w_t = w_hh.t()  # (H, 4H)
        for lo, b in _order(sizes, reverse):
            hi = lo + b
            h_prev[lo:hi] = h[:b]
            c_prev[lo:hi] = c[:b]
            a = torch.addmm(gx[lo:hi], h[:b], w_t, out=acts[lo:hi])  # (b, 4H)
            a[:, : 2 * H].sigmoid_()  # i, f
            a[:, 2 * H: 3 * H].tanh_()  # g
            a[:, 3 * H:].sigmoid_()  # o
            i, f, g, o = a.chunk(4, dim=1)
            c_new = torch.mul(f, c[:b], out=cs[lo:hi]).addcmul_(i, g)  # f*c + i*g
            h_new = torch.mul(o, torch.tanh(c_new), out=out[lo:hi])  # o*tanh(c)
            h[:b] = h_new
            c[:b] = c_new
        ctx.save_for_backward(acts, cs, h_prev, c_prev, w_hh)
        ctx.sizes, ctx.reverse = sizes, reverse
        return out, h, c

    @staticmethod
    @once_differentiable
    def backward(ctx, d_out: Tensor, d_hn: Tensor, d_cn: Tensor):
        acts, cs, h_prev, c_prev, w_hh = ctx.saved_tensors
        dh, dc = d_hn.clone(), d_cn.clone()  # (B, H) gradient buffers, like the state
        dgates = torch.empty_like(acts)  # (N, 4H)
        for lo, b in reversed(list(_order(ctx.sizes, ctx.reverse))):
            hi = lo + b
            i, f, g, o = acts[lo:hi].chunk(4, dim=1)  # each (b, H)
            tc = torch.tanh(cs[lo:hi])
            dh_t = dh[:b] + d_out[lo:hi]  # from the next step and from the output
            dc_t = dc[:b] + dh_t * o * (1 - tc * tc)
            di, df, dg, do = dgates[lo:hi].chunk(4, dim=1)
            torch.mul(dc_t * g, i * (1 - i), out=di)
            torch.mul(dc_t * c_prev[lo:hi], f * (1 - f), out=df)
            torch.mul(dc_t * i, 1 - g * g, out=dg)
            torch.mul(dh_t * tc, o * (1 - o), out=do)
            dc[:b] = dc_t * f  # to c_{t-1}
            dh[:b] = dgates[lo:hi] @ w_hh  # (b, 4H) @ (4H, H): to h_{t-1}
        d_w = dgates.t() @ h_prev if ctx.needs_input_grad[3] else None  # (4H, H), one matmul
        return dgates, dh, dc, d_w, None, None


def _order(sizes: List[int], reverse: bool):
    """(first row, row count) of each step, in the order the loop visits them."""
    offsets, lo = [], 0
    for b in sizes:
        offsets.append((lo, b))
        lo += b
    return reversed(offsets) if reverse else offsets
