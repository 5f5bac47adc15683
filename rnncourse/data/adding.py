"""The adding problem (Hochreiter & Schmidhuber 1997): a long-range memory task.

Each sequence has T steps of two features: a value drawn uniformly from [0, 1]
and a marker that is 1 at exactly two steps and 0 elsewhere. The target is the
sum of the two marked values. One marker falls in the first half of the
sequence and one in the second, so the model must hold the first value for
about T/2 steps or more.

A model that ignores its input does best by always answering the mean of the
target, E[a + b] = 1; its mean squared error is Var(a + b) = 2 · (1/12) = 1/6.
A model has solved the task only when its MSE is well below 1/6.
"""
from __future__ import annotations

import torch

from rnncourse.data.stream import BatchStream, generator_of

CONSTANT_MSE = 1.0 / 6.0  # MSE of always answering 1, the best input-blind guess


def adding_batch(batch_size: int, T: int, generator=0, dtype: torch.dtype = torch.float32,
                 device=None) -> tuple[torch.Tensor, torch.Tensor]:
    """One batch: inputs ``x`` of shape (B, T, 2), batch-first, and targets ``y`` (B,).

    ``x[..., 0]`` holds the values, ``x[..., 1]`` the two markers; ``y`` is the
    sum of the marked values. Drawn on the CPU from ``generator`` (a seed or a
    ``torch.Generator``), so the numbers are the same on every machine and device.
    """
    if T < 2:
        raise ValueError(f"the adding problem needs T >= 2 (two marked steps), got T={T}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    gen = generator_of(generator)
    values = torch.rand(batch_size, T, generator=gen, dtype=torch.float64)  # (B, T)
    half = T // 2
    first = torch.randint(0, half, (batch_size,), generator=gen)  # in [0, T/2)
    second = torch.randint(half, T, (batch_size,), generator=gen)  # in [T/2, T)
    markers = torch.zeros(batch_size, T, dtype=torch.float64)
    rows = torch.arange(batch_size)
    markers[rows, first] = 1.0
    markers[rows, second] = 1.0
    x = torch.stack([values, markers], dim=-1)  # (B, T, 2)
    y = values[rows, first] + values[rows, second]  # (B,)
    return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)


class AddingStream(BatchStream):
    """An endless stream of fresh ``(x, y)`` batches for :func:`rnncourse.train.fit`
    (with ``steps=``): every step sees new sequences, so nothing can be memorised.
    Iterating again restarts the same seeded stream."""

    def __init__(self, batch_size: int, T: int, seed: int = 0, dtype: torch.dtype = torch.float32):
        self.batch_size, self.T, self.dtype = batch_size, T, dtype
        super().__init__(lambda gen: adding_batch(batch_size, T, gen, dtype), seed)


def constant_mse(y: torch.Tensor, answer: float = 1.0) -> float:
    """The MSE of answering ``answer`` to every sequence (about 1/6 for answer=1)."""
    return float(((y.double() - answer) ** 2).mean())
