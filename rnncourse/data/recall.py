"""Recall the first symbol: a long-range memory task (lesson 05).

Each sequence starts with one of ``num_symbols`` *signal* symbols, followed by
``T - 1`` *distractors* drawn from a separate alphabet of
``num_distractors`` symbols. The target is the first symbol, to be given after
reading the whole sequence. Nothing after step 1 carries information about the
answer, so a model must hold one symbol in its state for ``T - 1`` steps
while the distractors keep arriving; guessing scores ``1 / num_symbols``.

Tokens ``0 .. num_symbols-1`` are signals, the next ``num_distractors`` are
distractors; inputs are one-hot vectors of size ``num_symbols + num_distractors``.
"""
from __future__ import annotations

import torch

from rnncourse.data.stream import BatchStream, generator_of


def vocab_size(num_symbols: int = 4, num_distractors: int = 4) -> int:
    """Size of the one-hot input vectors."""
    return num_symbols + num_distractors


def recall_tokens(batch_size: int, T: int, num_symbols: int = 4, num_distractors: int = 4,
                  generator: torch.Generator | int | None = None) -> tuple:
    """Token ids ``x`` (B, T) and targets ``y`` (B,) with ``y == x[:, 0]``."""
    if T < 1 or batch_size < 1:
        raise ValueError(f"batch_size and T must be at least 1, got {batch_size}, {T}")
    if num_symbols < 2 or num_distractors < 1:
        raise ValueError("need at least 2 signal symbols and 1 distractor")
    generator = generator_of(0 if generator is None else generator)
    y = torch.randint(num_symbols, (batch_size,), generator=generator)  # (B,)
    noise = torch.randint(num_distractors, (batch_size, T - 1), generator=generator)
    x = torch.cat([y[:, None], num_symbols + noise], dim=1)  # (B, T)
    return x, y


def recall_batch(batch_size: int, T: int, num_symbols: int = 4, num_distractors: int = 4,
                 generator: torch.Generator | int | None = None, device=None) -> tuple:
    """One-hot inputs ``x`` (B, T, V) float32 and targets ``y`` (B,) int64."""
    tokens, y = recall_tokens(batch_size, T, num_symbols, num_distractors, generator)
    x = torch.nn.functional.one_hot(tokens, num_symbols + num_distractors).float()  # (B, T, V)
    return x.to(device), y.to(device)


def recall_stream(batch_size: int, T: int, num_symbols: int = 4, num_distractors: int = 4,
                  seed: int = 0, device=None) -> BatchStream:
    """An endless seeded stream of fresh batches ``(x, y)`` for ``fit(steps=...)``."""
    return BatchStream(lambda gen: recall_batch(batch_size, T, num_symbols, num_distractors, gen, device),
                       seed)


def recall_batches(num_batches: int, batch_size: int, T: int, num_symbols: int = 4,
                   num_distractors: int = 4, seed: int = 0, device=None) -> list:
    """The first ``num_batches`` batches of :func:`recall_stream`, as a list."""
    return recall_stream(batch_size, T, num_symbols, num_distractors, seed, device).take(num_batches)
