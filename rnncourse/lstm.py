r"""The multi-layer LSTM, drop-in for ``torch.nn.LSTM``, with or without
projections (LSTMP).

Shape legend: ``T`` time steps, ``B`` batch, ``I`` input features, ``H``
hidden size, ``P`` proj_size, ``L`` layers, ``D`` directions. The shared
machinery (packing, layers, directions, checks) is :mod:`rnncourse.rnn_base`.

Two ways through the time loop, with the same equations:

* a full batch without projections: :class:`rnncourse.lstm_bptt.LSTMScan`,
  whose backward is written by hand (the speed of ``torch.nn.LSTM`` on a
  CPU); it falls back to autograd when a higher-order gradient is asked for;
* packed input of uneven lengths, LSTMP, or a ``torch.func`` transform
  (``vmap``, ``grad``, ...) around the model: autograd through
  :func:`rnncourse.functional.lstm_step` / :func:`~rnncourse.functional.lstmp_step`
  in :func:`rnncourse.rnn_base.scan`.
"""
from __future__ import annotations

import torch

from . import functional as RF
from .lstm_bptt import LSTMScan
from .rnn_base import RNNBase, Step


class LSTM(RNNBase):
    r"""LSTM, drop-in for ``torch.nn.LSTM``; gate rows (i, f, g, o), equations in
    :class:`rnncourse.LSTMCell`:

    .. math::
        i, f, o = \sigma(\cdot),\ g = \tanh(\cdot)
        \quad\text{(each } x_t W_{i\cdot}^T + b_{i\cdot} + h_{t-1} W_{h\cdot}^T + b_{h\cdot})\\
        c_t = f \odot c_{t-1} + i \odot g, \qquad h_t = o \odot \tanh(c_t)

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, proj_size=0)``; forward(input, (h0, c0)=None)
    returns (output, (h_n, c_n)). Shapes: see :mod:`rnncourse.recurrent`.

    With ``proj_size = P`` (``0 < P < H``), LSTMP: the output is projected,

    .. math::
        h_t = W_{hr}\,(o \odot \tanh(c_t))

    with one more parameter per layer and direction, ``weight_hr_l{k}`` of shape
    ``(P, H)``. ``h`` (h0, h_n, the output features) has size ``P``, the
    recurrent weights ``weight_hh_l{k}`` are ``(4H, P)`` and layers ``k > 0``
    take ``D*P`` inputs; ``c`` keeps size ``H``.

    Pitfall (LSTMP): h0 and c0 have different sizes, ``(L*D, B, P)`` and
    ``(L*D, B, H)``; passing two tensors of one shape is an error, not a broadcast.
    """

    num_gates, num_states = 4, 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype, proj_size=proj_size)

    def _step_fn(self, w_hh, b_hh, w_hr) -> Step:
        if w_hr is None:
            return lambda g, s: RF.lstm_step(g, s[0], s[1], w_hh)
        return lambda g, s: RF.lstmp_step(g, s[0], s[1], w_hh, w_hr)

    def _direction(self, x, sizes, init, weights, reverse):
        T, B = len(sizes), sizes[0]
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        if (w_hr is None and all(b == B for b in sizes)
                and not torch._C._are_functorch_transforms_active()):
            # A full batch: the same equations with a hand-written backward (lstm_bptt.py).
            out, h, c = LSTMScan.apply(x.view(T, B, x.shape[-1]), w_ih, self._input_bias(b_ih, b_hh),
                                       init[0], init[1], w_hh, reverse)
            return out.view(T * B, out.shape[-1]), (h, c)  # (N, H)
        # Uneven lengths (packed), LSTMP or torch.func: autograd through the step.
        return super()._direction(x, sizes, init, weights, reverse)
