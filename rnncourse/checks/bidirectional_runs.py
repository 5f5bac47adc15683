r"""Bidirectional and stacked LSTM runs on padded batches, right and wrong (lesson 06's checks).

The right answers are torch's own (``nn.LSTM`` with the weights copied in);
this module computes the *wrong* ones the checks name (and :class:`MarkedDropout`,
a dropout whose masks the stacked check knows), from one parametrised
run of an LSTM cell over a padded batch, in float64 on the CPU:

* the forward direction reads ``x[b, 0 .. L_b - 1]`` and keeps its state
  unchanged over the padding, so its final state is the one at ``L_b - 1``;
* the backward direction reads each sequence reversed **within its length**,
  ``x[b, L_b - 1], ..., x[b, 0]``, and its outputs are put back in the
  original order: position ``t`` holds the state after reading
  ``x[b, L_b - 1] .. x[b, t]``;
* outputs at the padding are zero (what ``pad_packed_sequence`` gives).

Shape legend: ``B`` batch, ``T`` padded length, ``I`` input features, ``H`` hidden size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from rnncourse import functional as F
from rnncourse.guard import handed_to_learner


def weights_of(cell) -> tuple:
    """(W_ih, W_hh, b_ih, b_hh) of an LSTM cell, detached float64 CPU copies."""
    return tuple(p.detach().to("cpu", torch.float64) for p in
                 (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh))


def flip_within(x: Tensor, lengths: Tensor) -> Tensor:
    """``x[b, L_b - 1 - t]`` for ``t < L_b``; padding left where it is. x: (B, T, ...)."""
    out = x.clone()
    for b, L in enumerate(lengths.tolist()):
        out[b, :L] = x[b, :L].flip(0)
    return out


def run(x: Tensor, lengths: Tensor, w: tuple, reverse: str = "none", masked: bool = True,
        flip_back: bool = True, pad: str = "zero", state_dropout: Tensor | None = None) -> tuple:
    """One direction over a padded batch: (outputs (B, T, H), h_final (B, H), c_final (B, H)).

    reverse: "none" (forward), "within" (each sequence within its length: right),
        "whole" (``x.flip(1)``: the backward direction starts on the padding);
    masked: hold the state over the padding (False: run through all T steps);
    flip_back: put the backward outputs back in the original order;
    pad: what the outputs hold at the padding, "zero" or "state" (the held state);
    state_dropout: (B, H) multipliers applied to h before every step (a mistake).
    """
    B, T, _ = x.shape
    H = w[1].shape[1]
    L = lengths.long()
    if reverse == "within":
        x = flip_within(x, L)
    elif reverse == "whole":
        x = x.flip(1)
    # which steps are real: in the whole-flip the real tokens sit at the end
    t = torch.arange(T)
    real = (t[None] >= (T - L)[:, None]) if reverse == "whole" else (t[None] < L[:, None])  # (B, T)
    h = c = x.new_zeros(B, H)
    outs = []
    for k in range(T):
        h_in = h * state_dropout if state_dropout is not None else h
        h_new, c_new = F.lstm_cell(x[:, k], (h_in, c), *w)
        keep = real[:, k, None] if masked else torch.ones(B, 1, dtype=torch.bool)
        h, c = torch.where(keep, h_new, h), torch.where(keep, c_new, c)
        outs.append(torch.where(keep, h, torch.zeros_like(h)) if pad == "zero" else h)
    out = torch.stack(outs, dim=1)  # (B, T, H)
    if reverse == "within" and flip_back:
        out = flip_within(out, L)
    elif reverse == "whole" and flip_back:
        out = out.flip(1)
    if pad == "zero":
        out = torch.where((t[None] < L[:, None])[..., None], out, torch.zeros_like(out))
    return out, h, c


def bilstm(x: Tensor, lengths: Tensor, wf: tuple, wb: tuple, forward: dict | None = None,
           backward: dict | None = None, swap: bool = False) -> tuple:
    """(outputs (B, T, 2H), h_n (2, B, H), c_n (2, B, H)), with ``forward``/``backward``
    the keywords of :func:`run` for each direction (mistakes) and ``swap`` putting the
    backward direction first."""
    of, hf, cf = run(x, lengths, wf, "none", **(forward or {}))
    ob, hb, cb = run(x, lengths, wb, **{"reverse": "within", **(backward or {})})
    if swap:
        return torch.cat([ob, of], -1), torch.stack([hb, hf]), torch.stack([cb, cf])
    return torch.cat([of, ob], -1), torch.stack([hf, hb]), torch.stack([cf, cb])


def stacked(x: Tensor, lengths: Tensor, layers: list, masks: dict | None = None,
            forward_half: bool = False, direction_major: bool = False) -> tuple:
    """Two or more bidirectional layers: (outputs, h_n (2L, B, H), c_n (2L, B, H)).

    layers: [(wf, wb), ...]; masks: where dropout multipliers apply, keyed
    "input" (B, T, I), "between" (B, T, 2H) (right: between layers only),
    "output" (B, T, 2H), "state" (B, H) (on h before every step of every layer);
    forward_half: the layer above reads only the forward half, zero-padded;
    direction_major: h_n ordered (fw_0, fw_1, ..., bw_0, bw_1, ...) instead of layer-major.
    """
    masks = masks or {}
    hs, cs = [], []
    out = x * masks["input"] if "input" in masks else x
    H = layers[0][0][1].shape[1]
    for k, (wf, wb) in enumerate(layers):
        if k > 0:
            if "between" in masks:
                out = out * masks["between"]
            if forward_half:
                out = torch.cat([out[..., :H], torch.zeros_like(out[..., H:])], -1)
        kw = {"state_dropout": masks["state"]} if "state" in masks else {}
        out, h, c = bilstm(out, lengths, wf, wb, forward=kw, backward=kw)
        hs += list(h)
        cs += list(c)
    if "output" in masks:
        out = out * masks["output"]
    order = list(range(0, len(hs), 2)) + list(range(1, len(hs), 2)) if direction_major else range(len(hs))
    return out, torch.stack([hs[i] for i in order]), torch.stack([cs[i] for i in order])


def torch_lstm(x: Tensor, lengths: Tensor, layers: list, packed: bool = True, dropout: float = 0.0,
               train: bool = False) -> tuple:
    """torch.nn.LSTM(bidirectional=True, num_layers=len(layers)) with the weights of ``layers``
    ([(wf, wb), ...]), float64 CPU, on the padded batch packed (or, ``packed=False``, padded
    as it is): (outputs (B, T, 2H) zero at the padding, h_n, c_n)."""
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
    I, H = layers[0][0][0].shape[1], layers[0][0][1].shape[1]
    lstm = torch.nn.LSTM(I, H, num_layers=len(layers), bidirectional=True, batch_first=True,
                         dropout=dropout, dtype=torch.float64)
    state = {}
    for k, (wf, wb) in enumerate(layers):
        for suffix, w in (("", wf), ("_reverse", wb)):
            for name, v in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), w):
                state[f"{name}_l{k}{suffix}"] = v
    lstm.load_state_dict(state)
    lstm.train(train)
    x = x.to("cpu", torch.float64)
    if not packed:
        with torch.no_grad():
            out, (h, c) = lstm(x)
        return out, h, c
    seq = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    with torch.no_grad():
        out, (h, c) = lstm(seq)
    out, _ = pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])
    return out, h, c


# ----------------------------------------------------------------------------
# dropout with known masks, for the stacked check

class MarkedDropout(torch.nn.Dropout):
    """A ``torch.nn.Dropout`` whose masks are known: call k (in training) multiplies by a mask
    drawn from seed ``seed + k``, zeros with probability p, survivors scaled by 1/(1-p), as
    torch's dropout does. It records the shape of every input, so a check can see where it
    was applied."""

    def __init__(self, p: float, seed: int):
        super().__init__(p)
        self.seed = seed
        self.calls: list = []

    def mask(self, k: int, shape) -> torch.Tensor:
        gen = torch.Generator().manual_seed(self.seed + k)
        keep = torch.rand(*shape, generator=gen, dtype=torch.float64) >= self.p
        return keep.double() / (1 - self.p)

    @handed_to_learner  # the check hands it to the learner's stacked_bilstm
    def forward(self, x):
        self.calls.append(tuple(x.shape))
        if not self.training:
            return x
        return x * self.mask(len(self.calls) - 1, x.shape).to(device=x.device, dtype=x.dtype)


@dataclass(frozen=True)
class DropoutSpec:
    p: float
    training: bool
    seed: int

    def build(self):
        d = MarkedDropout(self.p, self.seed)
        return d.train(self.training)
