r"""Multi-layer, optionally bidirectional recurrent networks: drop-in replacements
for ``torch.nn.RNN``, ``torch.nn.LSTM`` and ``torch.nn.GRU``, written from tensor
operations (the step equations are in :mod:`rnncourse.functional`).

Shape legend: ``T`` time steps, ``B`` batch, ``I`` input features, ``H`` hidden
size, ``L`` layers, ``D`` directions (2 if bidirectional else 1).

* input: ``(T, B, I)``, or ``(B, T, I)`` with ``batch_first=True``, or unbatched
  ``(T, I)``, or a ``PackedSequence`` (sorted or not)
* h0 (and c0 for the LSTM): ``(L*D, B, H)`` (``(L*D, H)`` unbatched), zeros if omitted
* output: ``(T, B, D*H)`` (batch-first / unbatched / packed like the input):
  the last layer's states, both directions concatenated on the feature axis
* h_n (and c_n): ``(L*D, B, H)``, ordered layer 0 forward, layer 0 backward, layer 1 ...
* an LSTM with ``proj_size = P > 0`` (LSTMP, :mod:`rnncourse.lstm`) has ``h`` of
  size ``P``: h0, h_n ``(L*D, B, P)``, output ``(T, B, D*P)``; c0, c_n stay ``(L*D, B, H)``
* a batch of ``B = 0`` sequences gives empty outputs, as in torch.nn

Parameters are named as in torch.nn: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` (and ``weight_hr_l{k}`` for LSTMP) with suffix
``_reverse`` for the backward direction; layer ``k > 0`` takes ``D*H`` (``D*P``)
input features. The shared machinery is in :mod:`rnncourse.rnn_base`, the LSTM
in :mod:`rnncourse.lstm`.

How it works: every input, padded or packed, is turned into packed layout (rows
ordered by time, each step holding the ``b_t`` sequences still running, longest
first). A full batch is the special case ``b_t = B``. The input projection of
all rows is one matmul; the loop then walks the steps, forward or backward.

Pitfalls this handles, which hand-written loops often get wrong:

* The backward direction must start at each sequence's LAST REAL token, not at
  the padding. Walking the packed steps backwards does exactly that: a sequence
  joins the loop (from its own h0) at the step where its last token sits.
* Iterate over ``split``/``unbind`` views, never index ``x[t]`` in the loop: each
  index op's backward allocates a full-size gradient, making BPTT cost O(T^2).
* Dropout acts between layers only (on the input of layers 1..L-1), never on
  the recurrent connection, and only in training mode.
"""
from __future__ import annotations

from . import functional as RF
from .lstm import LSTM
from .rnn_base import RNNBase, Step, State, scan

# RNNBase, scan, State and Step lived here before rnn_base.py: still importable from here.
__all__ = ["RNN", "LSTM", "GRU", "RNNBase", "scan", "State", "Step"]


def _no_projections(kwargs: dict) -> None:
    """torch.nn.RNN and GRU refuse proj_size with a ValueError (it is LSTM-only)."""
    if "proj_size" in kwargs:
        raise ValueError("proj_size argument is only supported for LSTM, not RNN or GRU")
    if kwargs:
        raise TypeError(f"unexpected keyword argument(s): {', '.join(kwargs)}")


class RNN(RNNBase):
    r"""Elman RNN, drop-in for ``torch.nn.RNN``:
    :math:`h_t = \phi(x_t W_{ih}^T + b_{ih} + h_{t-1} W_{hh}^T + b_{hh})`, with
    :math:`\phi` = tanh (default) or relu.

    ``RNN(input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
    batch_first=False, dropout=0.0, bidirectional=False)``; forward(input, h0=None)
    returns (output, h_n). Shapes: see :mod:`rnncourse.recurrent`.
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 nonlinearity: str = "tanh", bias: bool = True, batch_first: bool = False,
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None,
                 **kwargs):
        _no_projections(kwargs)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)

    def _step_fn(self, w_hh, b_hh, w_hr) -> Step:
        act = self.nonlinearity
        return lambda g, s: (RF.rnn_step(g, s[0], w_hh, act),)


class GRU(RNNBase):
    r"""GRU, drop-in for ``torch.nn.GRU``; gate rows (r, z, n) with PyTorch's
    reset-gate placement ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    equations in :class:`rnncourse.GRUCell`.

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``; forward(input, h0=None) returns (output, h_n).
    """

    num_gates = 3

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None, **kwargs):
        _no_projections(kwargs)
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)

    def _input_bias(self, b_ih, b_hh):
        return b_ih  # b_hn sits inside r * (...), so b_hh stays in the recurrent part

    def _step_fn(self, w_hh, b_hh, w_hr) -> Step:
        return lambda g, s: (RF.gru_step(g, s[0], w_hh, b_hh),)
