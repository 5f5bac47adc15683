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

Parameters are named as in torch.nn: ``weight_ih_l{k}``, ``weight_hh_l{k}``,
``bias_ih_l{k}``, ``bias_hh_l{k}`` with suffix ``_reverse`` for the backward
direction; layer ``k > 0`` takes ``D*H`` input features.

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

import numbers
import warnings
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from . import functional as RF
from .cells import check_sizes, reset_uniform
from .guard import check_reference_allowed
from .lstm_bptt import LSTMScan
from .validation import (ShapeError, check_dims, check_feature_size, check_like, check_shape,
                         check_tensor)

State = Tuple[Tensor, ...]  # (h,) or (h, c), each (B, H)
Step = Callable[[Tensor, State], State]


def scan(step: Step, steps: Sequence[Tensor], state: State, reverse: bool) -> Tuple[Tensor, State]:
    """Run ``step`` over time on packed-layout inputs.

    steps: T tensors ``(b_t, G)`` with ``b_t`` non-increasing (longest sequences first)
    state: initial state, each tensor ``(B, H)`` with ``B = b_0``
    returns: outputs ``(sum b_t, H)`` in the same packed layout, final state ``(B, H)``
    """
    outs: List[Tensor] = []
    if not reverse:
        ended: List[State] = []
        for g in steps:
            b = g.shape[0]
            if b < state[0].shape[0]:
                # Sequences b.. ended at the previous step: their state is final.
                ended.append(tuple(s[b:] for s in state))
                state = tuple(s[:b] for s in state)
            state = step(g, state)
            outs.append(state[0])  # (b_t, H)
        if ended:  # reassemble rows 0..B-1: running ones first, then the earlier-ended
            parts = [state] + ended[::-1]
            state = tuple(torch.cat([p[k] for p in parts]) for k in range(len(state)))
    else:
        init = state
        b_last = steps[-1].shape[0]
        if b_last < init[0].shape[0]:
            state = tuple(s[:b_last] for s in init)
        for g in reversed(steps):
            b, running = g.shape[0], state[0].shape[0]
            if b > running:
                # Sequences running..b-1 have their last real token here: they start now.
                state = tuple(torch.cat([s, s0[running:b]]) for s, s0 in zip(state, init))
            state = step(g, state)
            outs.append(state[0])  # (b_t, H)
        outs.reverse()
    return torch.cat(outs), state  # (N, H), state (B, H)


class RNNBase(nn.Module):
    """Shared machinery of :class:`RNN`, :class:`LSTM` and :class:`GRU`."""

    num_gates = 1
    num_states = 1  # 2 for the LSTM: (h, c)

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, device=None, dtype=None) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        if not isinstance(num_layers, int) or isinstance(num_layers, bool) or num_layers <= 0:
            raise ValueError(f"num_layers must be an int greater than zero, got {num_layers!r}")
        for name, flag in (("bias", bias), ("batch_first", batch_first),
                           ("bidirectional", bidirectional)):
            if not isinstance(flag, bool):
                raise TypeError(f"{name} should be of type bool, got: {type(flag).__name__}")
        if (not isinstance(dropout, numbers.Number) or isinstance(dropout, bool)
                or not 0 <= dropout <= 1):
            raise ValueError("dropout should be a number in range [0, 1] representing the "
                             f"probability of an element being zeroed, got {dropout!r}")
        if dropout > 0 and num_layers == 1:
            warnings.warn("dropout acts between recurrent layers only, so non-zero dropout "
                          f"expects num_layers greater than 1, but got dropout={dropout} "
                          f"and num_layers={num_layers}", stacklevel=3)
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.bidirectional = bias, batch_first, bidirectional
        self.dropout = float(dropout)
        self.proj_size = 0
        factory = {"device": device, "dtype": dtype}
        G, D = self.num_gates * hidden_size, self.num_directions

        # Same names, shapes and registration order as torch.nn (so the same seed
        # draws the same initial weights and state_dicts load both ways).
        self._flat_weights_names: List[str] = []
        self._all_weights: List[List[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * D
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {f"weight_ih{sfx}": (G, layer_input), f"weight_hh{sfx}": (G, hidden_size)}
                if bias:
                    shapes.update({f"bias_ih{sfx}": (G,), f"bias_hh{sfx}": (G,)})
                for name, shape in shapes.items():
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                self._flat_weights_names.extend(shapes)
                self._all_weights.append(list(shapes))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    def flatten_parameters(self) -> None:
        """No-op, for drop-in compatibility (torch.nn packs weights for cuDNN here)."""

    def reset_parameters(self) -> None:
        reset_uniform(self, self.hidden_size)  # torch.nn's rule and order

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    # -- subclasses define the step -----------------------------------------

    def _step_fn(self, w_hh: Tensor, b_hh: Optional[Tensor]) -> Step:
        raise NotImplementedError

    def _direction(self, x: Tensor, sizes: List[int], init: State, weights: tuple,
                   reverse: bool) -> Tuple[Tensor, State]:
        """One direction of one layer: x (N, I) -> outputs (N, H), final state."""
        w_ih, w_hh, b_ih, b_hh = weights
        gx = RF.input_projection(x, w_ih, self._input_bias(b_ih, b_hh))  # (N, G): one matmul
        steps = gx.split(sizes)  # T views (b_t, G): never index gx[t] in the loop
        return scan(self._step_fn(w_hh, b_hh), steps, init, reverse)

    def _input_bias(self, b_ih: Optional[Tensor], b_hh: Optional[Tensor]) -> Optional[Tensor]:
        return RF.folded_bias(b_ih, b_hh)

    # -- forward ---------------------------------------------------------------

    def forward(self, input, hx=None, *, lengths=None):
        """Run the network. See the module docstring for shapes.

        ``lengths`` (keyword-only, an rnncourse extra): true lengths of a padded
        batch. The padding is then skipped exactly as with a PackedSequence, the
        output is padded back (zeros past each length) and h_n holds each
        sequence's state at its last real token.
        """
        name = type(self).__name__
        check_reference_allowed(name)
        if lengths is not None:
            return self._forward_lengths(input, hx, lengths)
        packed = isinstance(input, PackedSequence)
        if packed:
            data, batch_sizes, sorted_idx, unsorted_idx = input
            check_dims("input.data", data, (2,), "(N, I): a PackedSequence's data")
            check_feature_size("input.data", data, self.input_size, "input_size")
            check_like("input.data", data, self.weight_ih_l0, f"the {name}'s weights")
            sizes = batch_sizes.tolist()
            B, batched = sizes[0], True
        else:
            check_tensor("input", input)
            layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
            check_dims("input", input, (2, 3), f"{layout} or unbatched (T, I)")
            check_feature_size("input", input, self.input_size, "input_size")
            check_like("input", input, self.weight_ih_l0, f"the {name}'s weights")
            batched = input.dim() == 3
            x = input if batched else input.unsqueeze(1)  # (T, B, I) or (B, T, I)
            if batched and self.batch_first:
                x = x.transpose(0, 1)  # (T, B, I)
            T, B = x.shape[0], x.shape[1]
            if T == 0:
                raise ShapeError(f"input has no time steps (shape {tuple(input.shape)})")
            data = x.reshape(T * B, self.input_size)  # (T*B, I): packed layout, b_t = B
            sizes = [B] * T
        state = self._initial_state(hx, B, batched, data)  # each (L*D, B, H)
        if packed and sorted_idx is not None:
            state = tuple(s.index_select(1, sorted_idx) for s in state)  # to sorted order
        out, final = self._layers(data, sizes, state)  # (N, D*H), each (L*D, B, H)
        if packed:
            if unsorted_idx is not None:
                final = tuple(s.index_select(1, unsorted_idx) for s in final)
            return PackedSequence(out, batch_sizes, sorted_idx, unsorted_idx), self._pack_state(final)
        out = out.view(T, B, -1)  # (T, B, D*H)
        if not batched:
            return out.squeeze(1), self._pack_state(tuple(s.squeeze(1) for s in final))
        if self.batch_first:
            out = out.transpose(0, 1)  # (B, T, D*H)
        return out, self._pack_state(final)

    def _layers(self, data: Tensor, sizes: List[int], state: State) -> Tuple[Tensor, State]:
        finals: List[State] = []
        x = data  # (N, I)
        for layer in range(self.num_layers):
            if layer > 0 and self.dropout > 0 and self.training:
                x = F.dropout(x, self.dropout, training=True)  # between layers only
            outs = []
            for direction in range(self.num_directions):
                k = layer * self.num_directions + direction
                w_ih, w_hh, b_ih, b_hh = self._weights(k)
                init = tuple(s[k] for s in state)  # each (B, H)
                out, fin = self._direction(x, sizes, init, (w_ih, w_hh, b_ih, b_hh), direction == 1)
                outs.append(out)
                finals.append(fin)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)  # (N, D*H)
        final = tuple(torch.stack([f[i] for f in finals]) for i in range(self.num_states))
        return x, final  # (N, D*H), each (L*D, B, H)

    def _weights(self, k: int):
        names = self._all_weights[k]
        w = [getattr(self, n) for n in names]
        return (w[0], w[1], w[2], w[3]) if self.bias else (w[0], w[1], None, None)

    def _initial_state(self, hx, B: int, batched: bool, like: Tensor) -> State:
        """Validate hx; return the state as a tuple of (L*D, B, H) tensors."""
        LD, H = self.num_layers * self.num_directions, self.hidden_size
        if hx is None:
            return tuple(like.new_zeros(LD, B, H) for _ in range(self.num_states))
        if self.num_states == 2:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"hx must be a tuple (h0, c0) of two tensors, got {type(hx).__name__}")
            names, hx = ("h0 (hx[0])", "c0 (hx[1])"), tuple(hx)
        else:
            names, hx = ("h0 (hx)",), (hx,)
        out = []
        for n, s in zip(names, hx):
            check_tensor(n, s)
            if batched:
                check_shape(n, s, (LD, B, H), "(num_layers * num_directions, B, H)")
            else:
                check_shape(n, s, (LD, H), "(num_layers * num_directions, H) for unbatched input")
                s = s.unsqueeze(1)
            check_like(n, s, like, "input")
            out.append(s)
        return tuple(out)

    def _pack_state(self, state: State):
        return state[0] if self.num_states == 1 else state

    def _forward_lengths(self, input, hx, lengths):
        check_tensor("input", input)
        check_dims("input", input, (3,), "(B, T, I) or (T, B, I): a padded batch")
        B, T = (input.shape[0], input.shape[1]) if self.batch_first else (input.shape[1], input.shape[0])
        if not isinstance(lengths, Tensor):
            lengths = torch.as_tensor(lengths)
        if lengths.dim() != 1 or lengths.shape[0] != B:
            raise ShapeError(f"lengths must have shape (B,) = ({B},), one length per sequence, "
                             f"got {tuple(lengths.shape)}")
        if lengths.dtype.is_floating_point or lengths.dtype == torch.bool:
            raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
        lengths = lengths.cpu()
        if len(lengths) and (lengths.min() < 1 or lengths.max() > T):
            raise ValueError(f"lengths must lie in [1, T] = [1, {T}], got min {int(lengths.min())} "
                             f"and max {int(lengths.max())}")
        packed = pack_padded_sequence(input, lengths, batch_first=self.batch_first,
                                      enforce_sorted=False)
        out, final = self.forward(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
        return out, final


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
                 dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"Unknown nonlinearity '{nonlinearity}'. Select from 'tanh' or 'relu'.")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)

    def _step_fn(self, w_hh, b_hh) -> Step:
        act = self.nonlinearity
        return lambda g, s: (RF.rnn_step(g, s[0], w_hh, act),)


class LSTM(RNNBase):
    r"""LSTM, drop-in for ``torch.nn.LSTM``; gate rows (i, f, g, o), equations in
    :class:`rnncourse.LSTMCell`.

    ``LSTM(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False, proj_size=0)``; forward(input, (h0, c0)=None)
    returns (output, (h_n, c_n)). ``proj_size > 0`` (LSTMP) is not implemented.
    """

    num_gates, num_states = 4, 2

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0,
                 bidirectional: bool = False, proj_size: int = 0, device=None, dtype=None):
        if proj_size != 0:
            raise NotImplementedError(
                f"proj_size={proj_size}: the reference LSTM does not implement projections "
                "(LSTMP); use torch.nn.LSTM for that")
        super().__init__(input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, device, dtype)

    def _step_fn(self, w_hh, b_hh) -> Step:
        return lambda g, s: RF.lstm_step(g, s[0], s[1], w_hh)

    def _direction(self, x, sizes, init, weights, reverse):
        T, B = len(sizes), sizes[0]
        if all(b == B for b in sizes):
            # A full batch: the same equations with a hand-written backward (lstm_bptt.py).
            w_ih, w_hh, b_ih, b_hh = weights
            out, h, c = LSTMScan.apply(x.view(T, B, -1), w_ih, self._input_bias(b_ih, b_hh),
                                       init[0], init[1], w_hh, reverse)
            return out.view(T * B, -1), (h, c)  # (N, H)
        # Uneven lengths (packed): autograd through lstm_step.
        return super()._direction(x, sizes, init, weights, reverse)


class GRU(RNNBase):
    r"""GRU, drop-in for ``torch.nn.GRU``; gate rows (r, z, n) with PyTorch's
    reset-gate placement ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``,
    equations in :class:`rnncourse.GRUCell`.

    ``GRU(input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
    dropout=0.0, bidirectional=False)``; forward(input, h0=None) returns (output, h_n).
    """

    num_gates = 3

    def _input_bias(self, b_ih, b_hh):
        return b_ih  # b_hn sits inside r * (...), so b_hh stays in the recurrent part

    def _step_fn(self, w_hh, b_hh) -> Step:
        return lambda g, s: (RF.gru_step(g, s[0], w_hh, b_hh),)
