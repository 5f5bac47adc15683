r"""What :class:`~rnncourse.RNN`, :class:`~rnncourse.LSTM` and :class:`~rnncourse.GRU`
share: parameters named and initialised as in torch.nn, argument checks, the
layer/direction loop and :func:`scan`, the time loop over packed-layout steps.
Shapes and pitfalls are documented in :mod:`rnncourse.recurrent`.

``H_out`` below is the size of ``h``: ``proj_size`` for an LSTM with
projections (LSTMP, see :mod:`rnncourse.lstm`), else ``hidden_size``.
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
from .validation import (ShapeError, check_dims, check_feature_size, check_lengths, check_like,
                         check_shape, check_tensor)

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
                 bidirectional: bool = False, device=None, dtype=None, proj_size: int = 0) -> None:
        super().__init__()
        check_sizes(input_size, hidden_size)
        if not isinstance(num_layers, int) or isinstance(num_layers, bool):
            raise TypeError(f"num_layers should be of type int, got: {type(num_layers).__name__}")
        if num_layers <= 0:
            raise ValueError(f"num_layers must be greater than zero, got {num_layers!r}")
        if not isinstance(proj_size, int) or isinstance(proj_size, bool):
            raise TypeError(f"proj_size should be of type int, got: {type(proj_size).__name__}")
        if proj_size < 0:
            raise ValueError("proj_size should be a positive integer or zero to disable "
                             f"projections, got {proj_size}")
        if proj_size >= hidden_size:
            raise ValueError(f"proj_size has to be smaller than hidden_size, got proj_size="
                             f"{proj_size} and hidden_size={hidden_size}")
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
        self.proj_size = proj_size
        factory = {"device": device, "dtype": dtype}
        G, D, H_out = self.num_gates * hidden_size, self.num_directions, self.output_size

        # Same names, shapes and registration order as torch.nn (so the same seed
        # draws the same initial weights and state_dicts load both ways);
        # weight_hr (LSTMP) comes last in each direction, as in torch.nn.
        self._flat_weights_names: List[str] = []
        self._all_weights: List[List[str]] = []
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else H_out * D
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction == 1 else "")
                shapes = {f"weight_ih{sfx}": (G, layer_input), f"weight_hh{sfx}": (G, H_out)}
                if bias:
                    shapes.update({f"bias_ih{sfx}": (G,), f"bias_hh{sfx}": (G,)})
                if proj_size:
                    shapes[f"weight_hr{sfx}"] = (proj_size, hidden_size)
                for name, shape in shapes.items():
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **factory)))
                self._flat_weights_names.extend(shapes)
                self._all_weights.append(list(shapes))
        self.reset_parameters()

    @property
    def num_directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        """H_out, the size of h (and of each direction's output features)."""
        return self.proj_size if self.proj_size > 0 else self.hidden_size

    @property
    def all_weights(self) -> List[List[nn.Parameter]]:
        return [[getattr(self, n) for n in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> List[Tensor]:
        """The weights in torch.nn's flat order, read afresh: a reparametrisation
        (``weight_norm``, ``parametrize``) that swaps one for a tensor shows here."""
        return [getattr(self, n) for n in self._flat_weights_names]

    def flatten_parameters(self) -> None:
        """No-op, for drop-in compatibility (torch.nn packs weights for cuDNN here)."""

    def reset_parameters(self) -> None:
        reset_uniform(self, self.hidden_size)  # torch.nn's rule and order

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("proj_size", 0), ("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False)):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)}"
        if getattr(self, "nonlinearity", "tanh") != "tanh":
            s += f", nonlinearity={self.nonlinearity}"
        return s

    # -- subclasses define the step -----------------------------------------

    def _step_fn(self, w_hh: Tensor, b_hh: Optional[Tensor], w_hr: Optional[Tensor]) -> Step:
        raise NotImplementedError

    def _direction(self, x: Tensor, sizes: List[int], init: State, weights: tuple,
                   reverse: bool) -> Tuple[Tensor, State]:
        """One direction of one layer: x (N, I) -> outputs (N, H_out), final state.

        weights: (w_ih, w_hh, b_ih, b_hh, w_hr), None for the absent ones."""
        w_ih, w_hh, b_ih, b_hh, w_hr = weights
        gx = RF.input_projection(x, w_ih, self._input_bias(b_ih, b_hh))  # (N, G): one matmul
        steps = gx.split(sizes)  # T views (b_t, G): never index gx[t] in the loop
        return scan(self._step_fn(w_hh, b_hh, w_hr), steps, init, reverse)

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
            if T == 0:  # torch.nn: RuntimeError (a ShapeError is one)
                raise ShapeError(f"input has no time steps (shape {tuple(input.shape)})")
            data = x.reshape(T * B, self.input_size)  # (T*B, I): packed layout, b_t = B (maybe 0)
            sizes = [B] * T
        state = self._initial_state(hx, B, batched, data)  # each (L*D, B, H)
        if packed and sorted_idx is not None:
            state = tuple(s.index_select(1, sorted_idx) for s in state)  # to sorted order
        out, final = self._layers(data, sizes, state)  # (N, D*H), each (L*D, B, H)
        if packed:
            if unsorted_idx is not None:
                final = tuple(s.index_select(1, unsorted_idx) for s in final)
            return PackedSequence(out, batch_sizes, sorted_idx, unsorted_idx), self._pack_state(final)
        out = out.view(T, B, out.shape[-1])  # (T, B, D*H_out); not -1, which fails for B = 0
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
                init = tuple(s[k] for s in state)  # each (B, H_out) or (B, H)
                out, fin = self._direction(x, sizes, init, self._weights(k), direction == 1)
                outs.append(out)
                finals.append(fin)
            x = outs[0] if len(outs) == 1 else torch.cat(outs, dim=1)  # (N, D*H)
        final = tuple(torch.stack([f[i] for f in finals]) for i in range(self.num_states))
        return x, final  # (N, D*H_out), each (L*D, B, H_out) or (L*D, B, H)

    def _weights(self, k: int) -> tuple:
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of layer-direction k, None for absent ones."""
        w = [getattr(self, n) for n in self._all_weights[k]]
        b_ih, b_hh = (w[2], w[3]) if self.bias else (None, None)
        return w[0], w[1], b_ih, b_hh, (w[-1] if self.proj_size else None)

    def _initial_state(self, hx, B: int, batched: bool, like: Tensor) -> State:
        """Validate hx; return the state as a tuple of (L*D, B, H_out) [and (L*D, B, H)] tensors."""
        LD = self.num_layers * self.num_directions
        sizes = (self.output_size, self.hidden_size)[: self.num_states]  # h is H_out, c is H
        if hx is None:
            return tuple(like.new_zeros(LD, B, H) for H in sizes)
        if self.num_states == 2:
            if not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f"hx must be a tuple (h0, c0) of two tensors, got {type(hx).__name__}")
            names, hx = ("h0 (hx[0])", "c0 (hx[1])"), tuple(hx)
        else:
            names, hx = ("h0 (hx)",), (hx,)
        out = []
        for n, s, H in zip(names, hx, sizes):
            check_tensor(n, s)
            axis = "proj_size" if H != self.hidden_size else "H"
            if batched:
                check_shape(n, s, (LD, B, H), f"(num_layers * num_directions, B, {axis})")
            else:
                check_shape(n, s, (LD, H), f"(num_layers * num_directions, {axis}) for unbatched input")
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
        lengths = check_lengths(lengths, B, T).cpu()
        packed = pack_padded_sequence(input, lengths, batch_first=self.batch_first,
                                      enforce_sorted=False)
        out, final = self.forward(packed, hx)
        out, _ = pad_packed_sequence(out, batch_first=self.batch_first, total_length=T)
        return out, final
