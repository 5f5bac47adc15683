r"""minGRU and minLSTM (Feng et al., 2024, "Were RNNs All We Needed?"): gated
recurrent layers whose gates read only the input, so that the recurrence is linear
and a parallel scan (:mod:`rnncourse.scan`) computes it in :math:`O(\log T)` rounds.

minGRU, per layer (rows of ``weight_ih`` stacked ``(z, h̃)``)::

    z_t  = sigmoid(x_t W_z^T + b_z)                   update gate: x_t only
    h̃_t = x_t W_h^T + b_h                            candidate: linear, no tanh
    h_t  = (1 - z_t) * h_{t-1} + z_t * h̃_t           = a_t h_{t-1} + b_t

with :math:`a_t = 1 - z_t`, :math:`b_t = z_t \tilde h_t`. Note which way ``z`` points:
in the paper (and here) :math:`z_t` weights the *candidate*, whereas PyTorch's GRU
(lesson 05) keeps the old state where :math:`z \approx 1`.

minLSTM, per layer (rows ``(f, i, h̃)``)::

    f_t, i_t = sigmoid(x_t W_f^T + b_f), sigmoid(x_t W_i^T + b_i)
    f'_t, i'_t = f_t / (f_t + i_t), i_t / (f_t + i_t)  normalised: they sum to 1
    h_t = f'_t * h_{t-1} + i'_t * h̃_t,  h̃_t = x_t W_h^T + b_h

Layers stack like ``torch.nn.GRU``'s (layer ``k > 0`` reads layer ``k - 1``'s
states). Shape legend: ``B`` batch, ``T`` time, ``I`` input features, ``H``
hidden size, ``L`` layers.

* input ``(B, T, I)`` with ``batch_first=True`` (the default here), ``(T, B, I)``
  otherwise, or unbatched ``(T, I)``;
* ``hx``: ``(L, B, H)`` (unbatched ``(L, H)``), zeros if omitted;
* ``lengths`` (keyword, padded input): ``(B,)`` integers in ``[1, T]``; padded
  steps leave the state unchanged (:math:`a = 1, b = 0`), the output there is 0,
  and ``h_n`` is each sequence's state at its last real token, as with packing;
* returns ``(output, h_n)``: output ``(B, T, H)`` (the last layer's states),
  ``h_n`` ``(L, B, H)``.

``mode`` picks how the recurrence runs, all giving the same function:
``"scan"`` (Hillis–Steele, default), ``"sequential"`` (the loop), ``"log"``
(Heinsen's log-space scan, with :math:`\log a_t` computed by softplus so that it
stays exact where :math:`a_t` rounds to 0 or 1). :meth:`MinGRU.step` runs one
time step with a carried state: streaming.
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .guard import check_reference_allowed
from .scan import scan_log, scan_parallel, scan_sequential
from .validation import (
    ShapeError, check_dims, check_feature_size, check_lengths, check_like, check_shape, check_tensor,
)

MODES = ("scan", "sequential", "log")
KINDS = {"minGRU": 2, "minLSTM": 3}  # row blocks stacked in weight_ih


# ----------------------------------------------------------------------------
# the equations, once

def mingru_coefficients(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """(a, b, log_a) of h_t = a_t h_{t-1} + b_t for x (..., I); each (..., H)."""
    k, h_tilde = F.linear(x, weight, bias).chunk(2, dim=-1)  # each (..., H)
    z = torch.sigmoid(k)
    return 1 - z, z * h_tilde, -F.softplus(k)  # log(1 - sigmoid(k)) = -softplus(k)


def minlstm_coefficients(x: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tuple[Tensor, Tensor, Tensor]:
    """(a, b, log_a) of the minLSTM, f' = f / (f + i) and i' = i / (f + i); each (..., H)."""
    pf, pi, h_tilde = F.linear(x, weight, bias).chunk(3, dim=-1)  # each (..., H)
    log_f, log_i = -F.softplus(-pf), -F.softplus(-pi)  # log sigmoid, exact in the tails
    log_norm = torch.logaddexp(log_f, log_i)  # log(f + i)
    log_a = log_f - log_norm
    return torch.exp(log_a), torch.exp(log_i - log_norm) * h_tilde, log_a


COEFFICIENTS = {"minGRU": mingru_coefficients, "minLSTM": minlstm_coefficients}


def mingru_step(x_t: Tensor, h_prev: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """One minGRU step, (B, I), (B, H) -> (B, H): (1 - z) h_prev + z h̃."""
    a, b, _ = mingru_coefficients(x_t, weight, bias)
    return a * h_prev + b


def minlstm_step(x_t: Tensor, h_prev: Tensor, weight: Tensor, bias: Optional[Tensor]) -> Tensor:
    """One minLSTM step, (B, I), (B, H) -> (B, H): f' h_prev + i' h̃."""
    a, b, _ = minlstm_coefficients(x_t, weight, bias)
    return a * h_prev + b


def run_recurrence(a: Tensor, b: Tensor, log_a: Tensor, h0: Tensor, mode: str) -> Tensor:
    """h (B, T, H) of h_t = a_t h_{t-1} + b_t by ``mode`` (see the module doc)."""
    if mode == "scan":
        return scan_parallel(a, b, h0)
    if mode == "sequential":
        return scan_sequential(a, b, h0)
    return scan_log(log_a, b, h0)


# ----------------------------------------------------------------------------
# the layers

class _MinBase(nn.Module):
    kind = "minGRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = True, mode: str = "scan", device=None, dtype=None):
        super().__init__()
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size), ("num_layers", num_layers)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.mode = bias, batch_first, mode
        G = KINDS[self.kind]
        kw = {"device": device, "dtype": dtype}
        for k in range(num_layers):
            inputs = input_size if k == 0 else hidden_size
            self.register_parameter(f"weight_ih_l{k}", nn.Parameter(torch.empty(G * hidden_size, inputs, **kw)))
            self.register_parameter(f"bias_ih_l{k}",
                                    nn.Parameter(torch.empty(G * hidden_size, **kw)) if bias else None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)), torch.nn.GRU's initialisation."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def layer_weights(self, k: int) -> Tuple[Tensor, Optional[Tensor]]:
        return getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}")

    def extra_repr(self) -> str:
        return (f"{self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, bias={self.bias}, "
                f"batch_first={self.batch_first}, mode={self.mode!r}")

    def _hx(self, hx: Optional[Tensor], B: int, like: Tensor, batched: bool) -> Tensor:
        L, H = self.num_layers, self.hidden_size
        if hx is None:
            return like.new_zeros(L, B, H)
        check_tensor("hx", hx)
        if batched:
            check_shape("hx", hx, (L, B, H), "(num_layers, B, H)")
        else:
            check_shape("hx", hx, (L, H), "(num_layers, H) for unbatched input")
            hx = hx.unsqueeze(1)
        check_like("hx", hx, like, "input")
        return hx

    def _mask(self, lengths, B: int, T: int, device) -> Optional[Tensor]:
        if lengths is None:
            return None
        lengths = check_lengths(lengths, B, T)
        steps = torch.arange(T, device=device)
        return steps[None, :] < lengths.to(device)[:, None]  # (B, T): True on real tokens

    def forward(self, input: Tensor, hx: Optional[Tensor] = None, *, lengths=None) -> Tuple[Tensor, Tensor]:
        """(output, h_n); see the module docstring for shapes, ``lengths`` and ``mode``."""
        check_reference_allowed(self.kind)
        check_tensor("input", input)
        layout = "(B, T, I)" if self.batch_first else "(T, B, I)"
        check_dims("input", input, (2, 3), f"{layout} or unbatched (T, I)")
        check_feature_size("input", input, self.input_size, "input_size")
        check_like("input", input, self.weight_ih_l0, f"the {self.kind}'s weights")
        batched = input.dim() == 3
        x = input if batched else input.unsqueeze(0)  # (B, T, I) or (T, B, I)
        if batched and not self.batch_first:
            x = x.transpose(0, 1)  # (B, T, I): the scan runs over dim 1
        B, T = x.shape[0], x.shape[1]
        if T == 0:
            raise ShapeError(f"input has no time steps (shape {tuple(input.shape)})")
        if lengths is not None and not batched:
            raise ValueError("lengths needs a batched (3-D) input")
        h0 = self._hx(hx, B, x, batched)  # (L, B, H)
        mask = self._mask(lengths, B, T, x.device)  # (B, T) or None
        finals = []
        for k in range(self.num_layers):
            a, b, log_a = COEFFICIENTS[self.kind](x, *self.layer_weights(k))  # each (B, T, H)
            if mask is not None:  # padding: a = 1, b = 0, the state passes through unchanged
                m = mask.unsqueeze(-1)  # (B, T, 1)
                a, b, log_a = torch.where(m, a, 1.0), torch.where(m, b, 0.0), torch.where(m, log_a, 0.0)
            h = run_recurrence(a, b, log_a, h0[k], self.mode)  # (B, T, H)
            finals.append(h[:, -1])  # after the padding: the state at the last real token
            x = h if mask is None else h * mask.unsqueeze(-1)  # zeros past each length, as padded
        h_n = torch.stack(finals)  # (L, B, H)
        out = x if batched and self.batch_first else x.transpose(0, 1)
        if not batched:
            return out.squeeze(1), h_n.squeeze(1)
        return out, h_n

    def step(self, x_t: Tensor, hx: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """One time step with a carried state: x_t (B, I), hx (L, B, H) or None ->
        (the last layer's h_t (B, H), the new state (L, B, H)). A stream fed through
        ``step`` gives the whole-sequence forward's outputs, one at a time."""
        check_reference_allowed(self.kind)
        check_tensor("x_t", x_t)
        check_dims("x_t", x_t, (2,), "(B, I): one time step of a batch")
        check_feature_size("x_t", x_t, self.input_size, "input_size")
        hx = self._hx(hx, x_t.shape[0], x_t, True)
        states, inp = [], x_t
        for k in range(self.num_layers):
            a, b, _ = COEFFICIENTS[self.kind](inp, *self.layer_weights(k))  # each (B, H)
            inp = a * hx[k] + b  # (B, H)
            states.append(inp)
        return inp, torch.stack(states)


class MinGRU(_MinBase):
    """minGRU layers: ``MinGRU(input_size, hidden_size, num_layers=1, bias=True,
    batch_first=True, mode="scan")``; forward(input, hx=None, *, lengths=None) ->
    (output, h_n). Parameters ``weight_ih_l{k}`` (2H, I_k), rows (z, h̃), and
    ``bias_ih_l{k}`` (2H,). Equations and shapes: :mod:`rnncourse.mingru`."""
    kind = "minGRU"


class MinLSTM(_MinBase):
    """minLSTM layers, as :class:`MinGRU` with ``weight_ih_l{k}`` (3H, I_k), rows
    (f, i, h̃), and ``bias_ih_l{k}`` (3H,). Equations: :mod:`rnncourse.mingru`."""
    kind = "minLSTM"


class MinGRUModel(nn.Module):
    """A minGRU stack with a linear head at every step: x (B, T, I) -> y (B, T, O).

    ``model.rnn`` is the :class:`MinGRU`, ``model.head`` the ``nn.Linear``. The
    streaming exercise of lesson 11 runs it one token at a time.
    """

    def __init__(self, input_size: int, hidden_size: int, output_size: int, num_layers: int = 1,
                 mode: str = "scan", device=None, dtype=None):
        super().__init__()
        self.rnn = MinGRU(input_size, hidden_size, num_layers, mode=mode, device=device, dtype=dtype)
        self.head = nn.Linear(hidden_size, output_size, device=device, dtype=dtype)

    def forward(self, x: Tensor, hx: Optional[Tensor] = None, *, lengths=None) -> Tensor:
        out, _ = self.rnn(x, hx, lengths=lengths)  # (B, T, H)
        return self.head(out)  # (B, T, O)
