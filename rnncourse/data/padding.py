r"""Collate sequences of different lengths into one padded batch.

Every lesson from 06 on batches sequences this way; the equations that then
ignore the padding (masked loss, last valid state, masked pooling, masked
softmax) live in :mod:`rnncourse.masking`.

Shape legend: ``B`` sequences, ``T`` the longest length, ``F`` the feature
shape of one step (empty for token ids).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from ..guard import check_reference_allowed
from ..validation import ShapeError


class PaddedBatch(NamedTuple):
    """``padded`` (B, T, *F); ``lengths`` (B,) int64; ``mask`` (B, T) bool, True at real steps.

    ``padded`` is batch-first; ``padded.transpose(0, 1)`` is the time-major layout.
    """
    padded: Tensor
    lengths: Tensor
    mask: Tensor


def pad_batch(sequences: Sequence[Tensor], pad_value: float = 0, side: str = "right") -> PaddedBatch:
    """Stack ``sequences`` (each ``(L_b, *F)``) into a padded batch.

    ``side="right"`` (the default, what packing and every lesson expect) puts
    the padding after each sequence; ``side="left"`` before it. ``lengths``
    and ``mask`` live on the sequences' device. Sequences of length 0 are
    allowed (their mask row is all False).
    """
    check_reference_allowed("data.padding.pad_batch")
    if isinstance(sequences, Tensor) or not isinstance(sequences, Sequence):
        raise TypeError(f"sequences must be a list or tuple of tensors, got {type(sequences).__name__}")
    if len(sequences) == 0:
        raise ValueError("sequences is empty: a batch needs at least one sequence")
    if side not in ("right", "left"):
        raise ValueError(f"side must be 'right' or 'left', got {side!r}")
    first = sequences[0]
    for b, s in enumerate(sequences):
        if not isinstance(s, Tensor):
            raise TypeError(f"sequences[{b}] must be a torch.Tensor, got {type(s).__name__}")
        if s.dim() == 0:
            raise ShapeError(f"sequences[{b}] must have shape (L, *F), got a 0-D tensor")
        if s.shape[1:] != first.shape[1:]:
            raise ShapeError(f"sequences[{b}] has step shape {tuple(s.shape[1:])} but sequences[0] "
                             f"has {tuple(first.shape[1:])}: every step must have the same shape")
        if s.dtype != first.dtype or s.device != first.device:
            raise TypeError(f"sequences[{b}] is {s.dtype} on {s.device} but sequences[0] is "
                            f"{first.dtype} on {first.device}")
    B, T = len(sequences), max(s.shape[0] for s in sequences)
    padded = first.new_full((B, T, *first.shape[1:]), pad_value)  # (B, T, *F)
    lengths = torch.tensor([s.shape[0] for s in sequences], dtype=torch.int64, device=first.device)
    for b, s in enumerate(sequences):
        L = s.shape[0]
        if side == "right":
            padded[b, :L] = s
        else:
            padded[b, T - L:] = s
    t = torch.arange(T, device=first.device)  # (T,)
    if side == "right":
        mask = t[None, :] < lengths[:, None]  # (B, T)
    else:
        mask = t[None, :] >= (T - lengths)[:, None]  # (B, T)
    return PaddedBatch(padded, lengths, mask)
