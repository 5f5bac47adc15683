r"""Equations on padded batches: masks, masked losses, masked readouts.

A batch of sequences of different lengths is stored as one padded tensor
``(B, T, ...)`` with the real tokens first and padding after them, plus the
``lengths`` ``(B,)``. Everything computed over such a batch must ignore the
padding; these functions are the course's one definition of how.

Shape legend: ``B`` batch, ``T`` the padded length (the longest sequence),
``H`` features, ``V`` vocabulary (classes), ``S`` the positions a softmax is
taken over (the source positions in attention).

Masks are boolean, ``True`` at real tokens. Lengths are integer tensors with
``1 <= lengths[b] <= T`` for the readouts (a sequence of length 0 has no last
state) and ``0 <= lengths[b] <= T`` for the rest.

Pitfalls the lessons measure:

* a loss averaged over all ``B * T`` positions changes when more padding is
  added; a masked mean over the real tokens does not;
* the last real state of sequence ``b`` is at ``lengths[b] - 1``, not ``T - 1``;
* a mean pooled over the padded axis counts the padding;
* a softmax whose masked scores are filled with a large negative number
  overflows in float16 and is not exactly zero; one whose row is entirely
  masked gives NaN unless handled. :func:`masked_softmax` handles both.
"""
from __future__ import annotations

from typing import Optional

import torch
from torch import Tensor

from .guard import check_reference_allowed
from .validation import ShapeError, check_tensor


def _check_lengths(lengths: Tensor, B: int, T: int, lowest: int) -> None:
    check_tensor("lengths", lengths)
    if lengths.dtype in (torch.bool,) or lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(f"lengths must be an integer tensor, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != (B,):
        raise ShapeError(f"lengths must have shape (B,) = ({B},), got {tuple(lengths.shape)}")
    if lengths.device.type != "meta" and B > 0:
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < lowest or hi > T:
            raise ValueError(f"lengths must lie in [{lowest}, T={T}], got values in [{lo}, {hi}]")


def _check_mask(mask: Tensor, shape: tuple) -> None:
    check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True at real tokens), got dtype {mask.dtype}")
    if tuple(mask.shape) != tuple(shape):
        raise ShapeError(f"mask must have shape {tuple(shape)}, got {tuple(mask.shape)}")


def lengths_to_mask(lengths: Tensor, max_len: Optional[int] = None) -> Tensor:
    r"""``mask[b, t] = t < lengths[b]``: True at the real tokens.

    lengths: (B,) integer; max_len: T (default ``lengths.max()``)
    returns: (B, T) bool, on the device of ``lengths``
    """
    check_reference_allowed("masking.lengths_to_mask")
    check_tensor("lengths", lengths)
    if lengths.dim() != 1:
        raise ShapeError(f"lengths must have shape (B,), got {tuple(lengths.shape)}")
    T = int(lengths.max()) if max_len is None and lengths.numel() else int(max_len or 0)
    _check_lengths(lengths, lengths.shape[0], T, lowest=0)
    positions = torch.arange(T, device=lengths.device)  # (T,)
    return positions[None, :] < lengths[:, None]  # (B, T)


def masked_cross_entropy(logits: Tensor, targets: Tensor, mask: Tensor) -> Tensor:
    r"""Cross-entropy averaged over the real tokens only.

    .. math::
        L = \frac{1}{\sum_{b,t} m_{bt}} \sum_{b,t} m_{bt}\,
            \big(-\log \operatorname{softmax}(z_{bt})_{y_{bt}}\big)

    Equal to ``F.cross_entropy(logits.reshape(-1, V), targets_with_pads_set_to_ignore_index.reshape(-1),
    ignore_index=...)``. The targets at padded positions are never read, so
    any value there is fine.

    logits: (B, T, V) float; targets: (B, T) integer; mask: (B, T) bool
    returns: a 0-dim tensor (NaN when the mask is all False, as torch's mean over nothing)
    """
    check_reference_allowed("masking.masked_cross_entropy")
    check_tensor("logits", logits)
    check_tensor("targets", targets)
    if logits.dim() != 3:
        raise ShapeError(f"logits must have shape (B, T, V), got {tuple(logits.shape)}")
    B, T, V = logits.shape
    if tuple(targets.shape) != (B, T):
        raise ShapeError(f"targets must have shape (B, T) = ({B}, {T}), got {tuple(targets.shape)}")
    if targets.is_floating_point() or targets.dtype == torch.bool:
        raise TypeError(f"targets must be an integer tensor of class indices, got dtype {targets.dtype}")
    _check_mask(mask, (B, T))
    logp = torch.log_softmax(logits, dim=-1)  # (B, T, V)
    safe = torch.where(mask, targets, torch.zeros_like(targets))  # pads may hold any value
    nll = -logp.gather(-1, safe.long().unsqueeze(-1)).squeeze(-1)  # (B, T)
    nll = torch.where(mask, nll, torch.zeros_like(nll))
    return nll.sum() / mask.sum()


def last_valid(outputs: Tensor, lengths: Tensor) -> Tensor:
    r"""The output at each sequence's last real position, ``outputs[b, lengths[b] - 1]``.

    outputs: (B, T, H); lengths: (B,) integer in [1, T]
    returns: (B, H)
    """
    check_reference_allowed("masking.last_valid")
    check_tensor("outputs", outputs)
    if outputs.dim() != 3:
        raise ShapeError(f"outputs must have shape (B, T, H), got {tuple(outputs.shape)}")
    B, T, H = outputs.shape
    _check_lengths(lengths, B, T, lowest=1)
    index = (lengths.long() - 1).view(B, 1, 1).expand(B, 1, H)  # (B, 1, H)
    return outputs.gather(1, index).squeeze(1)  # (B, H)


def masked_mean(outputs: Tensor, mask: Tensor) -> Tensor:
    r"""Mean over the real positions: :math:`\frac{\sum_t m_{bt} o_{bt}}{\sum_t m_{bt}}`.

    outputs: (B, T, H); mask: (B, T) bool, at least one True per row
    returns: (B, H)
    """
    check_reference_allowed("masking.masked_mean")
    check_tensor("outputs", outputs)
    if outputs.dim() != 3:
        raise ShapeError(f"outputs must have shape (B, T, H), got {tuple(outputs.shape)}")
    B, T, H = outputs.shape
    _check_mask(mask, (B, T))
    m = mask.to(outputs.dtype).unsqueeze(-1)  # (B, T, 1)
    return (outputs * m).sum(1) / m.sum(1)  # (B, H)


def masked_softmax(scores: Tensor, mask: Tensor, dim: int = -1) -> Tensor:
    r"""Softmax over ``dim`` that gives masked positions a weight of exactly 0.

    .. math::
        a_s = \frac{m_s \exp(e_s - \max_{s': m_{s'}} e_{s'})}{\sum_{s'} m_{s'} \exp(e_{s'} - \max e)}

    A row whose mask is entirely False gets all-zero weights (not NaN), and no
    large negative constant is used, so float16 neither overflows nor leaks
    weight onto padding.

    scores: (..., S) float; mask: bool, broadcastable to ``scores`` (e.g. (B, 1, S))
    returns: the shape of ``scores``
    """
    check_reference_allowed("masking.masked_softmax")
    check_tensor("scores", scores)
    check_tensor("mask", mask)
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True where allowed), got dtype {mask.dtype}")
    try:
        shape = torch.broadcast_shapes(mask.shape, scores.shape)
    except RuntimeError:
        shape = None
    if shape != scores.shape:
        raise ShapeError(f"mask of shape {tuple(mask.shape)} does not broadcast to "
                         f"scores' shape {tuple(scores.shape)}")
    neg_inf = torch.tensor(float("-inf"), dtype=scores.dtype, device=scores.device)
    top = torch.where(mask, scores, neg_inf).amax(dim, keepdim=True)  # row max over allowed
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top)).detach()  # all masked: 0
    e = torch.where(mask, torch.exp(scores - top), torch.zeros_like(scores))
    total = e.sum(dim, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


def reverse_padded(x: Tensor, lengths: Tensor) -> Tensor:
    r"""Reverse each sequence within its own length; padding stays at the end.

    ``y[b, t] = x[b, lengths[b] - 1 - t]`` for ``t < lengths[b]``, and
    ``y[b, t] = x[b, t]`` (the padding, untouched) for ``t >= lengths[b]``.
    Flipping the whole padded tensor instead would start the backward direction
    of a bidirectional layer on the padding.

    x: (B, T, ...) ; lengths: (B,) integer in [0, T]
    returns: the shape of ``x``
    """
    check_reference_allowed("masking.reverse_padded")
    check_tensor("x", x)
    if x.dim() < 2:
        raise ShapeError(f"x must have shape (B, T, ...), got {tuple(x.shape)}")
    B, T = x.shape[:2]
    _check_lengths(lengths, B, T, lowest=0)
    t = torch.arange(T, device=x.device)  # (T,)
    L = lengths.long().unsqueeze(1)  # (B, 1)
    source = torch.where(t < L, L - 1 - t, t)  # (B, T)
    index = source.view(B, T, *([1] * (x.dim() - 2))).expand(x.shape)
    return x.gather(1, index)
