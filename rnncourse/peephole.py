r"""LSTM cell with peephole connections (Gers, Schraudolph & Schmidhuber, 2002).

The gates also look at the cell state, through one weight per unit (a diagonal
matrix, stored as a vector):

.. math::
    i = \sigma(W_{ii} x + b_{ii} + W_{hi} h + b_{hi} + p_i \odot c)\\
    f = \sigma(W_{if} x + b_{if} + W_{hf} h + b_{hf} + p_f \odot c)\\
    g = \tanh(W_{ig} x + b_{ig} + W_{hg} h + b_{hg})\\
    c' = f \odot c + i \odot g\\
    o = \sigma(W_{io} x + b_{io} + W_{ho} h + b_{ho} + p_o \odot c')\\
    h' = o \odot \tanh(c')

Note the output gate peeks at the NEW cell state ``c'``, the input and forget
gates at the old one. With ``p_i = p_f = p_o = 0`` this is exactly
:class:`rnncourse.LSTMCell`. Parameters: those of LSTMCell (gate rows i, f, g, o)
plus ``weight_ci``, ``weight_cf``, ``weight_co``, each ``(H,)``.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from . import functional as RF
from .cells import LSTMCell
from .guard import check_reference_allowed


class PeepholeLSTMCell(LSTMCell):
    """Peephole LSTM cell. Same arguments, inputs and outputs as :class:`LSTMCell`."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None) -> None:
        super().__init__(input_size, hidden_size, bias, device, dtype)
        factory = {"device": device, "dtype": dtype}
        # Registered after the LSTM weights, which are therefore drawn first and
        # equal an LSTMCell's under the same seed.
        bound = 1.0 / math.sqrt(hidden_size)
        for name in ("weight_ci", "weight_cf", "weight_co"):
            p = nn.Parameter(torch.empty(hidden_size, **factory))  # (H,)
            nn.init.uniform_(p, -bound, bound)
            self.register_parameter(name, p)

    def forward(self, input: Tensor, hx: Optional[Tuple[Tensor, Tensor]] = None
                ) -> Tuple[Tensor, Tensor]:
        check_reference_allowed("PeepholeLSTMCell")
        x, batched = self._check_input(input)  # (B, I)
        h, c = self._check_lstm_state(hx, x, batched)  # each (B, H)
        gx = RF.input_projection(x, self.weight_ih, RF.folded_bias(self.bias_ih, self.bias_hh))
        gates = torch.addmm(gx, h, self.weight_hh.t())  # (B, 4H), rows i, f, g, o
        i, f, g, o = gates.chunk(4, dim=1)  # each (B, H)
        i = torch.sigmoid(torch.addcmul(i, self.weight_ci, c))  # peeks at old c
        f = torch.sigmoid(torch.addcmul(f, self.weight_cf, c))
        c = f * c + i * torch.tanh(g)  # (B, H)
        o = torch.sigmoid(torch.addcmul(o, self.weight_co, c))  # peeks at new c
        h = o * torch.tanh(c)  # (B, H)
        return (h, c) if batched else (h.squeeze(0), c.squeeze(0))
