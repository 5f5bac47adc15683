r"""Single-step recurrent cells: drop-in replacements for ``torch.nn.RNNCell``,
``torch.nn.LSTMCell`` and ``torch.nn.GRUCell``, written from tensor operations.

Same constructor arguments, same parameter names and shapes (a torch.nn cell's
``state_dict`` loads with ``strict=True`` and vice versa), same initialisation
(uniform in :math:`\pm 1/\sqrt{H}`, drawn in the same order, so the same seed
gives the same weights), same inputs and outputs, batched ``(B, I)`` or
unbatched ``(I,)``.

Parameters (``G`` = number of gates: RNN 1, GRU 3, LSTM 4):

* ``weight_ih``: ``(G*H, I)``, ``weight_hh``: ``(G*H, H)``
* ``bias_ih``, ``bias_hh``: ``(G*H,)``, or ``None`` when ``bias=False``

Gate rows are stacked in PyTorch's order: LSTM ``(i, f, g, o)``, GRU ``(r, z, n)``.
The equations are in :mod:`rnncourse.functional`.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from . import functional as RF
from .guard import check_reference_allowed
from .validation import ShapeError, check_dims, check_feature_size, check_like, check_shape, check_tensor


def reset_uniform(module: nn.Module, hidden_size: int) -> None:
    """torch.nn's initialisation: every parameter uniform in +-1/sqrt(H), drawn in
    registration order, so the same seed gives torch.nn's weights."""
    bound = 1.0 / math.sqrt(hidden_size) if hidden_size > 0 else 0.0  # H = 0: no weights to draw
    for p in module.parameters():
        nn.init.uniform_(p, -bound, bound)


def check_sizes(input_size, hidden_size, allow_zero: bool = False) -> None:
    """Constructor checks shared by cells and layers (same rules as torch.nn).

    The layers need sizes > 0 (ValueError). torch.nn's cells accept 0 (an empty
    state, e.g. ``RNNCell(4, 0)`` maps (B, 4) to (B, 0)), so ``allow_zero``
    admits it there; a negative size is a ShapeError (a RuntimeError in torch)."""
    for name, value in (("input_size", input_size), ("hidden_size", hidden_size)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} should be of type int, got: {type(value).__name__}")
        if allow_zero and value < 0:
            raise ShapeError(f"{name} must be zero or more, got {value}")
        if not allow_zero and value <= 0:
            raise ValueError(f"{name} must be greater than zero, got {value}")


class _CellBase(nn.Module):
    num_gates = 1

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size, allow_zero=True)
        if not isinstance(bias, bool):
            raise TypeError(f"bias should be of type bool, got: {type(bias).__name__}")
        factory = {"device": device, "dtype": dtype}
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        G = self.num_gates * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size, **factory))  # (G*H, I)
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size, **factory))  # (G*H, H)
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G, **factory))  # (G*H,)
            self.bias_hh = nn.Parameter(torch.empty(G, **factory))  # (G*H,)
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_uniform(self, self.hidden_size)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.bias is not True:
            s += f", bias={self.bias}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    def _check_input(self, input) -> Tuple[Tensor, bool]:
        """Validate ``input``; return it as (B, I) and whether it was batched."""
        check_tensor("input", input)
        check_dims("input", input, (1, 2), "(B, I) or unbatched (I,)")
        check_feature_size("input", input, self.input_size, "input_size")
        check_like("input", input, self.weight_ih, "the cell's weights")
        batched = input.dim() == 2
        return (input if batched else input.unsqueeze(0)), batched

    def _check_state(self, name: str, s, x: Tensor, batched: bool) -> Tensor:
        """Validate one state tensor (h or c); zeros when ``None``. Returns (B, H)."""
        B, H = x.shape[0], self.hidden_size
        if s is None:
            return x.new_zeros(B, H)
        check_tensor(name, s)
        if batched:
            check_shape(name, s, (B, H), "(B, H)")
        else:
            check_shape(name, s, (H,), "(H,) for unbatched input")
            s = s.unsqueeze(0)
        check_like(name, s, x, "input")
        return s


class RNNCell(_CellBase):
    r"""Elman RNN cell: :math:`h' = \tanh(x W_{ih}^T + b_{ih} + h W_{hh}^T + b_{hh})`.

    Args: input_size (I), hidden_size (H), bias=True, nonlinearity='tanh' or 'relu'.

    Shapes: input ``(B, I)`` or ``(I,)``; hx ``(B, H)`` or ``(H,)``, zeros if omitted;
    returns h' with hx's shape.
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 nonlinearity: str = "tanh", device=None, dtype=None) -> None:
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, bias, device, dtype)

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        check_reference_allowed("RNNCell")
        x, batched = self._check_input(input)  # (B, I)
        h = self._check_state("hx", hx, x, batched)  # (B, H)
        gx = RF.input_projection(x, self.weight_ih, RF.folded_bias(self.bias_ih, self.bias_hh))
        h = RF.rnn_step(gx, h, self.weight_hh, self.nonlinearity)  # (B, H)
        return h if batched else h.squeeze(0)


class LSTMCell(_CellBase):
    r"""LSTM cell, gates in PyTorch's row order (i, f, g, o):

    .. math::
        i = \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi}) \qquad
        f = \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf})\\
        g = \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg}) \qquad
        o = \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho})\\
        c' = f \odot c + i \odot g \qquad h' = o \odot \tanh(c')

    Shapes: input ``(B, I)`` or ``(I,)``; hx = ``(h, c)``, each ``(B, H)`` or
    ``(H,)``, zeros if omitted; returns ``(h', c')``.

    Pitfall: the gate order is (i, f, g, o), not (i, f, o, g) as in some papers;
    weights copied in the wrong order give a working but different LSTM.
    """

    num_gates = 4

    def _check_lstm_state(self, hx, x: Tensor, batched: bool) -> Tuple[Tensor, Tensor]:
        """Validate hx = (h, c); zeros when ``None``. Returns two (B, H) tensors."""
        if hx is None:
            hx = (None, None)
        elif not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f"hx must be a tuple (h, c) of two tensors, got {type(hx).__name__}")
        return (self._check_state("hx[0] (h)", hx[0], x, batched),
                self._check_state("hx[1] (c)", hx[1], x, batched))

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tensor]:
        check_reference_allowed("LSTMCell")
        x, batched = self._check_input(input)  # (B, I)
        h, c = self._check_lstm_state(hx, x, batched)  # each (B, H)
        gx = RF.input_projection(x, self.weight_ih, RF.folded_bias(self.bias_ih, self.bias_hh))
        h, c = RF.lstm_step(gx, h, c, self.weight_hh)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))


class GRUCell(_CellBase):
    r"""GRU cell, gates in PyTorch's row order (r, z, n):

    .. math::
        r = \sigma(W_{ir} x + b_{ir} + W_{hr} h + b_{hr}) \qquad
        z = \sigma(W_{iz} x + b_{iz} + W_{hz} h + b_{hz})\\
        n = \tanh(W_{in} x + b_{in} + r \odot (W_{hn} h + b_{hn})) \qquad
        h' = (1 - z) \odot n + z \odot h

    Shapes: input ``(B, I)`` or ``(I,)``; hx ``(B, H)`` or ``(H,)``; returns h'.

    Pitfall: the reset gate multiplies ``W_hn h + b_hn`` (after the matmul), not
    ``h`` before it as in Cho et al. (2014).
    """

    num_gates = 3

    def forward(self, input: Tensor, hx: Optional[Tensor] = None) -> Tensor:
        check_reference_allowed("GRUCell")
        x, batched = self._check_input(input)  # (B, I)
        h = self._check_state("hx", hx, x, batched)  # (B, H)
        gx = RF.input_projection(x, self.weight_ih, self.bias_ih)  # (B, 3H)
        h = RF.gru_step(gx, h, self.weight_hh, self.bias_hh)
        return h if batched else h.squeeze(0)
