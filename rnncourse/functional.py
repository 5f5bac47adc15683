r"""The recurrent update equations, written from plain tensor operations.

Every reference model in rnncourse (cells and multi-layer modules) computes its
step with the functions here, so the math lives in one place. Nothing here
calls PyTorch's fused recurrent kernels (``torch._VF.lstm``, ``torch.lstm_cell``,
...): the point is that you can read every operation.

Shape legend: ``B`` batch, ``I`` input features, ``H`` hidden size, ``G`` the
stacked gate size (``H`` for an RNN, ``3H`` for a GRU, ``4H`` for an LSTM).
Weights use PyTorch's layout: ``w_ih`` is ``(G, I)``, ``w_hh`` is ``(G, H)``, so
a projection is ``x @ w_ih.T``.

Why the step functions take ``gx`` rather than ``x``: the input projection
``x_t W_ih^T + b`` does not depend on the previous state, so a sequence model
computes it for all time steps in ONE matrix multiply before the loop and hands
each step its slice. Only ``h_{t-1} W_hh^T`` must stay inside the loop. This is
the main reason the reference LSTM runs close to ``torch.nn.LSTM``'s speed.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .guard import check_reference_allowed

# ---------------------------------------------------------------------------
# Input projection (outside the time loop)
# ---------------------------------------------------------------------------


def input_projection(x: Tensor, w_ih: Tensor, bias: Optional[Tensor]) -> Tensor:
    """``x @ w_ih.T + bias`` for a whole batch of rows at once.

    x: (N, I) -- N rows, e.g. every (time, batch) pair of a sequence
    returns: (N, G)
    """
    if bias is None:
        return x @ w_ih.t()  # (N, G)
    return torch.addmm(bias, x, w_ih.t())  # (N, G), fused multiply-add


def folded_bias(b_ih: Optional[Tensor], b_hh: Optional[Tensor]) -> Optional[Tensor]:
    """RNN and LSTM add both biases to the same pre-activation, so they can be
    summed once and added with the input projection. (The GRU cannot fold its
    ``b_hn``: the reset gate multiplies it.) Gradients still reach both."""
    if b_ih is None:
        return None
    return b_ih + b_hh  # (G,)


# ---------------------------------------------------------------------------
# One time step, given the projected input gx
# ---------------------------------------------------------------------------


def rnn_step(gx: Tensor, h: Tensor, w_hh: Tensor, nonlinearity: str = "tanh") -> Tensor:
    r"""Elman RNN: :math:`h_t = \phi(x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh})`.

    gx: (B, H) projected input with both biases; h: (B, H); w_hh: (H, H).
    """
    pre = torch.addmm(gx, h, w_hh.t())  # (B, H)
    return torch.tanh(pre) if nonlinearity == "tanh" else torch.relu(pre)


def lstm_step(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor) -> Tuple[Tensor, Tensor]:
    r"""LSTM, gate rows in PyTorch's order (i, f, g, o):

    .. math::
        i = \sigma(\cdot),\ f = \sigma(\cdot),\ g = \tanh(\cdot),\ o = \sigma(\cdot)
        \quad\text{(each of } x_t W^T + b_{ih} + h_{t-1} W_h^T + b_{hh})\\
        c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

    gx: (B, 4H) with both biases; h, c: (B, H); w_hh: (4H, H).
    The cell update is additive: the gradient reaches ``c_{t-1}`` scaled by
    ``f`` alone, with no weight matrix and no squashing in between.
    """
    gates = torch.addmm(gx, h, w_hh.t())  # (B, 4H): one matmul for all four gates
    i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
    i, f, o = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o)
    g = torch.tanh(g)
    c = torch.addcmul(f * c, i, g)  # (B, H): f*c + i*g
    h = o * torch.tanh(c)  # (B, H)
    return h, c


def lstmp_step(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, w_hr: Tensor
               ) -> Tuple[Tensor, Tensor]:
    r"""LSTM with a projection (LSTMP, Sak et al. 2014): :func:`lstm_step`, then
    the hidden state is projected down to ``P < H`` features:

    .. math::
        c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = W_{hr}\,(o \odot \tanh(c_t))

    gx: (B, 4H) with both biases; h: (B, P); c: (B, H); w_hh: (4H, P); w_hr: (P, H).
    Returns h (B, P) and c (B, H). The gates read the projected ``h``, so
    ``W_hh`` shrinks from (4H, H) to (4H, P): fewer weights and a cheaper step.
    """
    m, c = lstm_step(gx, h, c, w_hh)  # m = o * tanh(c): (B, H)
    return m @ w_hr.t(), c  # (B, P), (B, H)


def gru_step(gx: Tensor, h: Tensor, w_hh: Tensor, b_hh: Optional[Tensor]) -> Tensor:
    r"""GRU, gate rows in PyTorch's order (r, z, n):

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}),\quad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})\\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})),\quad
        h_t = (1 - z) \odot n + z \odot h_{t-1}

    Pitfall: PyTorch applies the reset gate AFTER the recurrent matmul,
    ``r * (W_hn h + b_hn)``. Cho et al. (2014) apply it before,
    ``W_hn (r * h)``; the two are different functions with the same parameters.

    gx: (B, 3H) with b_ih only; h: (B, H); w_hh: (3H, H); b_hh: (3H,) or None.
    """
    gh = h @ w_hh.t() if b_hh is None else torch.addmm(b_hh, h, w_hh.t())  # (B, 3H)
    x_r, x_z, x_n = gx.chunk(3, dim=1)  # each (B, H)
    h_r, h_z, h_n = gh.chunk(3, dim=1)  # each (B, H)
    r = torch.sigmoid(x_r + h_r)
    z = torch.sigmoid(x_z + h_z)
    n = torch.tanh(torch.addcmul(x_n, r, h_n))  # x_n + r * h_n
    return torch.lerp(n, h, z)  # (1 - z) * n + z * h


# ---------------------------------------------------------------------------
# Whole cells on raw weights (what a learner writes in the notebooks)
# ---------------------------------------------------------------------------


def rnn_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor,
             b_ih: Optional[Tensor] = None, b_hh: Optional[Tensor] = None,
             nonlinearity: str = "tanh") -> Tensor:
    """One Elman RNN step on raw weights. x: (B, I), h: (B, H) -> (B, H)."""
    check_reference_allowed("functional.rnn_cell")
    return rnn_step(input_projection(x, w_ih, folded_bias(b_ih, b_hh)), h, w_hh, nonlinearity)


def lstm_cell(x: Tensor, state: Tuple[Tensor, Tensor], w_ih: Tensor, w_hh: Tensor,
              b_ih: Optional[Tensor] = None, b_hh: Optional[Tensor] = None
              ) -> Tuple[Tensor, Tensor]:
    """One LSTM step on raw weights. x: (B, I), state (h, c) each (B, H)."""
    check_reference_allowed("functional.lstm_cell")
    h, c = state
    return lstm_step(input_projection(x, w_ih, folded_bias(b_ih, b_hh)), h, c, w_hh)


def gru_cell(x: Tensor, h: Tensor, w_ih: Tensor, w_hh: Tensor,
             b_ih: Optional[Tensor] = None, b_hh: Optional[Tensor] = None) -> Tensor:
    """One GRU step on raw weights (PyTorch's reset-gate placement). x: (B, I), h: (B, H)."""
    check_reference_allowed("functional.gru_cell")
    return gru_step(input_projection(x, w_ih, b_ih), h, w_hh, b_hh)
