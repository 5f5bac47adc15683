"""Batches for training: the two ways the course feeds a recurrent model.

* **One long stream, carried state** (lesson 02's truncated BPTT, lesson 08's
  language model): :func:`batchify` cuts a stream of N tokens (or value
  vectors) into B contiguous rows, :func:`tbptt_chunks` walks those rows in
  chunks of T steps with next-step targets, and :func:`detach_state` carries
  the final state of one chunk into the next without backpropagating into it.
  Row b of chunk k+1 continues row b of chunk k, which is why the state may be
  carried at all.
* **Fresh independent sequences** (the adding problem, first-symbol recall):
  :class:`BatchStream` turns a ``make_batch(generator)`` function into an
  endless, seeded, restartable stream of batches for :func:`rnncourse.train.fit`.

Lesson 02 asks the learner to write ``batchify`` and ``tbptt_batches``
themselves; the functions here are the same rules, so they are switched off
(like the reference models) while a learner's own version is being checked.
"""
from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor

from rnncourse.guard import check_reference_allowed


def generator_of(seed_or_gen) -> torch.Generator:
    """A CPU ``torch.Generator``: the one given, or a new one seeded with an int."""
    if isinstance(seed_or_gen, torch.Generator):
        return seed_or_gen
    if isinstance(seed_or_gen, int) and not isinstance(seed_or_gen, bool):
        return torch.Generator().manual_seed(seed_or_gen)
    raise TypeError(f"expected an int seed or a torch.Generator, got {type(seed_or_gen).__name__}")


def batchify(stream: Tensor, B: int) -> Tensor:
    """Cut a stream (N, ...) into B contiguous rows (B, N // B, ...).

    Row b is ``stream[b*L:(b+1)*L]`` with L = N // B: an unbroken stretch of the
    stream, so a state carried along a row reads the stream in order. The last
    N mod B items are dropped.
    """
    check_reference_allowed("data.stream.batchify")
    if B < 1:
        raise ValueError(f"B must be at least 1, got {B}")
    L = stream.shape[0] // B
    if L < 2:
        raise ValueError(f"a stream of {stream.shape[0]} items gives rows of {L} < 2 for B={B}: "
                         "no input/target pair fits")
    return stream[: B * L].reshape(B, L, *stream.shape[1:])  # (B, L, ...)


def tbptt_chunks(rows: Tensor, T: int) -> list[tuple[Tensor, Tensor]]:
    """The (inputs, targets) chunks of rows (B, L, ...) for truncated BPTT over T steps.

    Chunk k holds inputs ``rows[:, i:i+n]`` and targets ``rows[:, i+1:i+1+n]``
    (the next item of each row), i = k*T, n = min(T, L-1-i): the last chunk may be
    shorter, and the last item of a row is only ever a target.
    """
    check_reference_allowed("data.stream.tbptt_chunks")
    if T < 1:
        raise ValueError(f"T must be at least 1, got {T}")
    L = rows.shape[1]
    chunks = []
    for i in range(0, L - 1, T):
        n = min(T, L - 1 - i)
        chunks.append((rows[:, i:i + n], rows[:, i + 1:i + 1 + n]))  # each (B, n, ...)
    return chunks


def detach_state(state):
    """The state to carry into the next chunk: same values, cut from the graph.

    Works for an RNN/GRU state (a tensor) and an LSTM state (a tuple (h, c)).
    Without it, the next chunk's backward would run on into the freed graph of
    every chunk before it.
    """
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(detach_state(s) for s in state)
    return state.detach()


class BatchStream:
    """An endless stream of fresh batches, ``make_batch(generator)`` each.

    Every step sees new sequences, so nothing can be memorised. One CPU
    generator, seeded with ``seed``, feeds every batch, so the stream is the same
    on every machine; iterating again restarts it from the seed.
    """

    def __init__(self, make_batch: Callable[[torch.Generator], tuple], seed: int = 0):
        self.make_batch, self.seed = make_batch, seed

    def __iter__(self) -> Iterator[tuple]:
        gen = generator_of(self.seed)
        while True:  # fit(steps=...) takes exactly as many as it needs
            yield self.make_batch(gen)

    def take(self, n: int) -> list:
        """The first ``n`` batches, as a list."""
        it = iter(self)
        return [next(it) for _ in range(n)]
