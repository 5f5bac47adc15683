r"""A sentiment-like classification task whose label can flip late (lesson 07).

Each example is a sequence of word ids of length ``L`` drawn uniformly from
``[min_len, max_len]`` (5 to 100 by default), so a batch padded to its longest
member is mostly padding for its short members. It opens with neutral filler
and one to three *sentiment* words of one polarity ``s`` (positive or negative),
placed anywhere in the opening. Then, with probability ``flip_prob``, a short
closing clause of ``c`` tokens (2 to ``max_clause``) reverses it:

* ``but`` followed by one or two words of the opposite polarity
  ("... good ... but dull"), or
* ``not`` followed by a word of the opening's polarity ("... good ... not good").

The label is the polarity of the *last* clause: ``1 - s`` after a flip, ``s``
without one. It is a function of the tokens (a perfect reader scores 100%),
but it needs both a long memory (the opening's words can be ~100 steps before
the end) and the end of the sequence (a flip sits in the last ``max_clause``
tokens). ``flip_pos`` is the index of ``but``/``not`` (-1 without a flip).

Token ids: ``PAD = 0`` (what :func:`~rnncourse.data.padding.pad_batch` pads with and
``nn.Embedding(padding_idx=0)`` expects), ``BUT = 1``, ``NOT = 2``, then the
positive, negative and neutral words of :data:`WORDS`.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from rnncourse.data.padding import pad_batch
from rnncourse.data.stream import BatchStream, generator_of

PAD, BUT, NOT = 0, 1, 2
POSITIVE = ("good", "great", "fine", "superb")
NEGATIVE = ("bad", "awful", "dull", "poor")
NEUTRAL = ("the", "film", "plot", "actor", "was", "and", "a", "scene", "story", "music",
           "long", "it")
WORDS = ("<pad>", "but", "not") + POSITIVE + NEGATIVE + NEUTRAL  # id -> word
VOCAB_SIZE = len(WORDS)
_POS0 = 3                                   # first positive id
_NEG0 = _POS0 + len(POSITIVE)               # first negative id
_NEU0 = _NEG0 + len(NEGATIVE)               # first neutral id
NO_FLIP, FLIP_BUT, FLIP_NOT = 0, 1, 2       # values of flip_kind


class SentimentData(NamedTuple):
    """``n`` examples: ``sequences`` a list of (L_b,) int64 tensors; ``labels``,
    ``lengths``, ``flip_pos`` (-1: none) and ``flip_kind`` (0 none, 1 but, 2 not), each (n,) int64."""
    sequences: list
    labels: Tensor
    lengths: Tensor
    flip_pos: Tensor
    flip_kind: Tensor


def _randint(gen: torch.Generator, low: int, high: int) -> int:
    """One integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (), generator=gen))


def _words(gen: torch.Generator, first: int, count: int, n: int) -> Tensor:
    return first + torch.randint(count, (n,), generator=gen)


def _polar(gen: torch.Generator, positive: bool, n: int) -> Tensor:
    """``n`` sentiment word ids of one polarity."""
    return _words(gen, _POS0, len(POSITIVE), n) if positive else _words(gen, _NEG0, len(NEGATIVE), n)


def _example(gen: torch.Generator, min_len: int, max_len: int, flip_prob: float,
             max_clause: int) -> tuple:
    L = _randint(gen, min_len, max_len)
    s = _randint(gen, 0, 1)  # the opening's polarity: 1 positive, 0 negative
    tokens = _words(gen, _NEU0, len(NEUTRAL), L)  # (L,) filler first
    flip = bool(torch.rand((), generator=gen) < flip_prob)
    c = _randint(gen, 2, min(max_clause, L - 2)) if flip else 0  # closing clause length
    opening = L - c
    k = _randint(gen, 1, min(3, opening))
    where = torch.randperm(opening, generator=gen)[:k]
    tokens[where] = _polar(gen, s == 1, k)
    if not flip:
        return tokens, s, -1, NO_FLIP
    f = opening  # index of "but" / "not"
    if bool(torch.rand((), generator=gen) < 0.5):
        tokens[f] = BUT
        m = _randint(gen, 1, min(2, c - 1))
        where = f + 1 + torch.randperm(c - 1, generator=gen)[:m]
        tokens[where] = _polar(gen, s == 0, m)  # the opposite polarity after "but"
        kind = FLIP_BUT
    else:
        tokens[f] = NOT
        tokens[f + 1] = _polar(gen, s == 1, 1)[0]  # "not good" after a good opening
        kind = FLIP_NOT
    return tokens, 1 - s, f, kind


def sentiment_examples(n: int, min_len: int = 5, max_len: int = 100, flip_prob: float = 0.5,
                       max_clause: int = 8, generator: torch.Generator | int | None = None) -> SentimentData:
    """``n`` seeded examples of the late-flip task (see the module docstring)."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 4 <= min_len <= max_len:
        raise ValueError(f"need 4 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}")
    if not 0.0 <= flip_prob <= 1.0:
        raise ValueError(f"flip_prob must lie in [0, 1], got {flip_prob}")
    if max_clause < 2:
        raise ValueError(f"max_clause must be at least 2, got {max_clause}")
    gen = generator_of(0 if generator is None else generator)
    rows = [_example(gen, min_len, max_len, flip_prob, max_clause) for _ in range(n)]
    seqs = [r[0] for r in rows]

    def column(i):
        return torch.tensor([r[i] for r in rows], dtype=torch.int64)
    return SentimentData(seqs, column(1), torch.tensor([len(s) for s in seqs]), column(2), column(3))


def sentiment_batch(batch_size: int, generator: torch.Generator | int | None = None,
                    device=None, **task) -> tuple:
    """One padded batch: tokens (B, T) int64 padded with PAD on the right, lengths (B,),
    labels (B,); T is the longest length in the batch. ``task``: as :func:`sentiment_examples`."""
    data = sentiment_examples(batch_size, generator=generator, **task)
    padded, lengths, _ = pad_batch(data.sequences, pad_value=PAD)
    return padded.to(device), lengths.to(device), data.labels.to(device)


def sentiment_stream(batch_size: int, seed: int = 0, device=None, **task) -> BatchStream:
    """An endless seeded stream of fresh ``(tokens, lengths, labels)`` batches for ``fit``."""
    return BatchStream(lambda gen: sentiment_batch(batch_size, gen, device, **task), seed)


def decode(tokens) -> str:
    """Word ids (a tensor or a list) as text, padding shown as ``_``."""
    ids = tokens.tolist() if isinstance(tokens, Tensor) else list(tokens)
    return " ".join("_" if i == PAD else WORDS[i] for i in ids)


def polarity(label: int) -> str:
    return "positive" if int(label) == 1 else "negative"
