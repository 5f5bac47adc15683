r"""A toy tagging language in which the right context decides some tags (lessons 06, 07).

A sentence is a run of *segments*, each drawn independently of everything before it:

* a **plain word** (probability ``1 - p_ambiguous``): a word whose tag is fixed
  (``the`` is DET, ``dog`` is NOUN, ``ran`` is VERB, ...);
* an **ambiguous segment** (probability ``p_ambiguous``, when it fits in the
  sentence): an ambiguous word ``w`` (``saw``, ``watch``, ...) whose sense
  ``s`` is NOUN or VERB, drawn with ``P(s = VERB) = p_verb[w]``; then ``g``
  filler words (``0 <= g <= max_gap``, uniform among those that fit), whose
  tags are fixed; then a **resolver**: ``is``/``was`` (AUX) after a noun,
  ``it``/``them`` (PRON) after a verb.

So the tag of an ambiguous word is decided by a token ``g + 1`` positions to
its right, and nothing to its left says anything about it (the sense is drawn
independently of the left context). Every other tag follows from its own token.

**The left-to-right ceiling.** A tagger that must tag position ``t`` from
``x_1 .. x_t`` alone does best by predicting the likelier sense of each
ambiguous word; at an ambiguous ``w`` it is right with probability
:math:`\max(p_w, 1 - p_w)` and at every other token with probability 1. Its
expected token accuracy on given sentences is therefore exactly

.. math::
    \text{ceiling} = 1 - \frac{1}{N} \sum_{\text{ambiguous } t} \min(p_{w_t}, 1 - p_{w_t})

with ``N`` the number of tokens. :func:`left_to_right_ceiling` computes it
from the tokens; :func:`expected_ceiling` computes its limit over the
language itself (many sentences) exactly, by a recursion over the remaining
length. A tagger that reads the whole sentence can reach 1
(:func:`full_context_tags` is such a tagger, written as rules).

Token id 0 is ``<pad>`` (for ``nn.Embedding(padding_idx=0)``); tags have no
padding entry (a padded batch carries a mask).

Shape legend: ``B`` sentences, ``T`` the longest length, ``L`` one sentence's length.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

from .padding import pad_batch
from .stream import generator_of

PAD = "<pad>"

# Tags. The ambiguous words are tagged NOUN or VERB by their sense.
TAGS: tuple[str, ...] = ("DET", "NOUN", "VERB", "ADJ", "ADV", "AUX", "PRON")
TAG_INDEX = {t: i for i, t in enumerate(TAGS)}
NOUN, VERB = TAG_INDEX["NOUN"], TAG_INDEX["VERB"]

# Plain words (outside segments) and fillers (inside a gap): each has one tag.
PLAIN_WORDS: dict[str, str] = {
    "the": "DET", "a": "DET", "dog": "NOUN", "cat": "NOUN", "ran": "VERB", "ate": "VERB",
}
FILLER_WORDS: dict[str, str] = {
    "big": "ADJ", "red": "ADJ", "old": "ADJ", "very": "ADV", "often": "ADV",
}
# Resolvers: which sense they reveal, and their own tag.
RESOLVERS: dict[str, tuple[int, str]] = {
    "is": (NOUN, "AUX"), "was": (NOUN, "AUX"), "it": (VERB, "PRON"), "them": (VERB, "PRON"),
}
AMBIGUOUS_WORDS: tuple[str, ...] = ("saw", "watch", "fly", "park")

TOKENS: tuple[str, ...] = ((PAD,) + tuple(PLAIN_WORDS) + tuple(FILLER_WORDS)
                           + AMBIGUOUS_WORDS + tuple(RESOLVERS))
TOKEN_INDEX = {w: i for i, w in enumerate(TOKENS)}
PAD_ID = 0

# The fixed tag of every unambiguous token (by id); ambiguous words have none.
_FIXED_TAG: dict[int, int] = {
    **{TOKEN_INDEX[w]: TAG_INDEX[t] for w, t in PLAIN_WORDS.items()},
    **{TOKEN_INDEX[w]: TAG_INDEX[t] for w, t in FILLER_WORDS.items()},
    **{TOKEN_INDEX[w]: TAG_INDEX[t] for w, (_, t) in RESOLVERS.items()},
}
_AMBIGUOUS_INDEX: dict[int, int] = {TOKEN_INDEX[w]: k for k, w in enumerate(AMBIGUOUS_WORDS)}
_RESOLVES: dict[int, int] = {TOKEN_INDEX[w]: s for w, (s, _) in RESOLVERS.items()}


@dataclass(frozen=True)
class TaggingLanguage:
    """The language's settings.

    min_len, max_len: sentence lengths are uniform in ``[min_len, max_len]``.
    p_ambiguous: probability that a segment is ambiguous (when one fits: it needs 2 tokens).
    max_gap: most filler words between an ambiguous word and its resolver.
    p_verb: ``P(sense = VERB)`` of each ambiguous word, in :data:`AMBIGUOUS_WORDS` order.
    """
    min_len: int = 4
    max_len: int = 24
    p_ambiguous: float = 0.4
    max_gap: int = 3
    p_verb: tuple[float, ...] = (0.5, 0.5, 0.6, 0.4)

    def __post_init__(self):
        if not 1 <= self.min_len <= self.max_len:
            raise ValueError(f"need 1 <= min_len <= max_len, got min_len={self.min_len}, "
                             f"max_len={self.max_len}")
        if not 0.0 <= self.p_ambiguous <= 1.0:
            raise ValueError(f"p_ambiguous must lie in [0, 1], got {self.p_ambiguous}")
        if self.max_gap < 0:
            raise ValueError(f"max_gap must be >= 0, got {self.max_gap}")
        if len(self.p_verb) != len(AMBIGUOUS_WORDS) or not all(0.0 <= p <= 1.0 for p in self.p_verb):
            raise ValueError(f"p_verb must hold {len(AMBIGUOUS_WORDS)} probabilities (one per word "
                             f"of {AMBIGUOUS_WORDS}), got {self.p_verb}")


LANGUAGE = TaggingLanguage()


def vocab_size() -> int:
    """Number of token ids, ``<pad>`` (id 0) included."""
    return len(TOKENS)


def num_tags() -> int:
    return len(TAGS)


class TaggedSentences(NamedTuple):
    """``tokens[b]`` and ``tags[b]`` are int64 tensors of shape (L_b,); ``ceiling``
    is the exact expected token accuracy of the best left-to-right tagger on them."""
    tokens: list
    tags: list
    ceiling: float


class TaggingBatch(NamedTuple):
    """A padded batch: ``tokens`` (B, T) with ``<pad>`` = 0; ``tags`` (B, T), padded with
    ``tag_pad_value``; ``lengths`` (B,) int64; ``mask`` (B, T) bool; ``ceiling`` as above."""
    tokens: Tensor
    tags: Tensor
    lengths: Tensor
    mask: Tensor
    ceiling: float


def _sentence(rng: random.Random, lang: TaggingLanguage) -> tuple[list, list]:
    L = rng.randint(lang.min_len, lang.max_len)
    words, tags = [], []
    plain, fillers = list(PLAIN_WORDS), list(FILLER_WORDS)
    by_sense = {s: [w for w, (r, _) in RESOLVERS.items() if r == s] for s in (NOUN, VERB)}
    while len(words) < L:
        left = L - len(words)
        if left >= 2 and rng.random() < lang.p_ambiguous:
            g = rng.randint(0, min(lang.max_gap, left - 2))
            k = rng.randrange(len(AMBIGUOUS_WORDS))
            sense = VERB if rng.random() < lang.p_verb[k] else NOUN
            words.append(AMBIGUOUS_WORDS[k])
            tags.append(sense)
            for _ in range(g):
                f = rng.choice(fillers)
                words.append(f)
                tags.append(TAG_INDEX[FILLER_WORDS[f]])
            r = rng.choice(by_sense[sense])
            words.append(r)
            tags.append(TAG_INDEX[RESOLVERS[r][1]])
        else:
            w = rng.choice(plain)
            words.append(w)
            tags.append(TAG_INDEX[PLAIN_WORDS[w]])
    return [TOKEN_INDEX[w] for w in words], tags


def tagging_sentences(n: int, generator: torch.Generator | int | None = None,
                      language: TaggingLanguage = LANGUAGE) -> TaggedSentences:
    """``n`` seeded sentences with their tags, and the left-to-right ceiling on them."""
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not isinstance(language, TaggingLanguage):
        raise TypeError(f"language must be a TaggingLanguage, got {type(language).__name__}")
    gen = generator_of(0 if generator is None else generator)
    # One draw from the torch generator seeds a Python RNG: per-token torch draws are slow.
    rng = random.Random(int(torch.randint(2 ** 62, (1,), generator=gen)))
    tokens, tags = [], []
    for _ in range(n):
        x, y = _sentence(rng, language)
        tokens.append(torch.tensor(x, dtype=torch.int64))
        tags.append(torch.tensor(y, dtype=torch.int64))
    return TaggedSentences(tokens, tags, left_to_right_ceiling(tokens, language))


def tagging_batch(n: int, generator: torch.Generator | int | None = None,
                  language: TaggingLanguage = LANGUAGE, tag_pad_value: int = 0,
                  device=None) -> TaggingBatch:
    """``n`` sentences as one right-padded batch (see :class:`TaggingBatch`)."""
    data = tagging_sentences(n, generator, language)
    return collate(data.tokens, data.tags, tag_pad_value, device, ceiling=data.ceiling)


def collate(tokens: Sequence[Tensor], tags: Sequence[Tensor], tag_pad_value: int = 0,
            device=None, ceiling: float | None = None) -> TaggingBatch:
    """Pad sentences (lists of (L_b,) tensors) into a :class:`TaggingBatch`.

    ``ceiling`` defaults to :func:`left_to_right_ceiling` of ``tokens``.
    """
    if len(tokens) != len(tags):
        raise ValueError(f"tokens and tags must hold as many sentences, got {len(tokens)} and {len(tags)}")
    for b, (x, y) in enumerate(zip(tokens, tags)):
        if x.shape != y.shape:
            raise ValueError(f"sentence {b}: tokens {tuple(x.shape)} and tags {tuple(y.shape)} differ in shape")
    x = pad_batch(list(tokens), pad_value=PAD_ID)
    y = pad_batch(list(tags), pad_value=tag_pad_value)
    if ceiling is None:
        ceiling = left_to_right_ceiling(tokens)
    return TaggingBatch(x.padded.to(device), y.padded.to(device), x.lengths.to(device),
                        x.mask.to(device), ceiling)


def _as_sentences(tokens, lengths) -> list:
    if isinstance(tokens, Tensor):
        if tokens.dim() == 1:
            return [tokens]
        if tokens.dim() != 2:
            raise ValueError(f"tokens must be (L,), (B, T) with lengths, or a list of (L,), "
                             f"got shape {tuple(tokens.shape)}")
        if lengths is None:
            raise ValueError("a padded (B, T) tokens tensor needs its lengths (B,)")
        return [tokens[b, : int(lengths[b])] for b in range(tokens.shape[0])]
    return list(tokens)


def left_to_right_posterior(sentence: Tensor, language: TaggingLanguage = LANGUAGE) -> Tensor:
    """``P(tag_t | x_1..x_t)`` of one sentence (L,): (L, num_tags) float64, exact.

    At an ambiguous word it is the word's prior sense ``(1 - p_w, p_w)`` on
    (NOUN, VERB): nothing to its left is drawn dependent on its sense. Elsewhere
    it is one-hot on the token's fixed tag.
    """
    ids = sentence.tolist()
    post = torch.zeros(len(ids), len(TAGS), dtype=torch.float64)
    for t, i in enumerate(ids):
        if i in _FIXED_TAG:
            post[t, _FIXED_TAG[i]] = 1.0
        elif i in _AMBIGUOUS_INDEX:
            p = language.p_verb[_AMBIGUOUS_INDEX[i]]
            post[t, NOUN], post[t, VERB] = 1.0 - p, p
        else:
            raise ValueError(f"token id {i} at position {t} is not a word of the language "
                             f"(ids 1..{len(TOKENS) - 1}; 0 is <pad>)")
    return post


def best_left_to_right_tags(sentence: Tensor, language: TaggingLanguage = LANGUAGE) -> Tensor:
    """The Bayes-optimal left-to-right tagger's tags (L,): the likelier sense at each ambiguous word."""
    return left_to_right_posterior(sentence, language).argmax(-1)


def left_to_right_ceiling(tokens, language: TaggingLanguage = LANGUAGE, lengths: Tensor | None = None) -> float:
    """Expected token accuracy of the best left-to-right tagger on these sentences (exact).

    tokens: a list of (L,) tensors, one (L,) tensor, or a padded (B, T) tensor with ``lengths``.
    The mean is over all real tokens (a micro average, as a masked accuracy is).
    """
    sentences = _as_sentences(tokens, lengths)
    if not sentences or sum(s.shape[0] for s in sentences) == 0:
        raise ValueError("no tokens: the ceiling of an empty set of sentences is undefined")
    ids = torch.cat([s.reshape(-1).cpu() for s in sentences])  # (N,)
    if ids.dtype not in (torch.int64, torch.int32) or ids.min() < 1 or ids.max() >= len(TOKENS):
        raise ValueError(f"tokens must be ids of the language's words (1..{len(TOKENS) - 1}, "
                         f"0 is <pad>), got dtype {ids.dtype}, values in [{int(ids.min())}, {int(ids.max())}]")
    return float(_best_probability(language)[ids].mean())


def lookahead_ceiling(tokens, delay: int, language: TaggingLanguage = LANGUAGE,
                      lengths: Tensor | None = None) -> float:
    """Expected token accuracy of the best tagger that tags position ``t`` after reading
    ``x_1 .. x_{t + delay}`` (a streaming tagger that waits ``delay`` tokens), exact.

    An ambiguous word whose resolver lies within ``delay`` tokens is tagged right for
    sure; otherwise the tokens seen after it (fillers) say nothing about its sense, and
    the best guess is right with probability ``max(p_w, 1 - p_w)``. ``delay = 0`` is
    :func:`left_to_right_ceiling`; ``delay >= max_gap + 1`` gives 1.
    """
    if delay < 0:
        raise ValueError(f"delay must be >= 0, got {delay}")
    sentences = _as_sentences(tokens, lengths)
    best = _best_probability(language)
    right, total = 0.0, 0
    for s in sentences:
        where = resolver_position(s)
        for t, i in enumerate(s.tolist()):
            right += 1.0 if where[t] - t <= delay else float(best[i])
        total += len(where)
    if total == 0:
        raise ValueError("no tokens: the ceiling of an empty set of sentences is undefined")
    return right / total


def _best_probability(language: TaggingLanguage) -> Tensor:
    """(len(TOKENS),) float64: the best left-to-right tagger's chance of being right at each token."""
    best = torch.ones(len(TOKENS), dtype=torch.float64)
    for i, k in _AMBIGUOUS_INDEX.items():
        best[i] = max(language.p_verb[k], 1.0 - language.p_verb[k])
    return best


def expected_ceiling(language: TaggingLanguage = LANGUAGE) -> float:
    r"""The ceiling over the language itself: E[errors of the best left-to-right tagger] / E[L].

    Exact, by a recursion on the number of tokens still to fill, ``r``:
    :math:`A(r) = p\,(1 + \operatorname{mean}_g A(r - 2 - g)) + (1 - p)\,A(r - 1)` for
    ``r >= 2`` (``A(0) = A(1) = 0``) is the expected number of ambiguous words, and each
    costs :math:`\operatorname{mean}_w \min(p_w, 1 - p_w)` (the word is drawn independently).
    The ceiling of ``n`` sampled sentences converges to it as ``n`` grows.
    """
    p = language.p_ambiguous
    A = [0.0] * (language.max_len + 1)
    for r in range(2, language.max_len + 1):
        gaps = range(0, min(language.max_gap, r - 2) + 1)
        A[r] = p * (1.0 + sum(A[r - 2 - g] for g in gaps) / len(gaps)) + (1.0 - p) * A[r - 1]
    lengths = range(language.min_len, language.max_len + 1)
    ambiguous = sum(A[L] for L in lengths) / len(lengths)
    mean_len = sum(lengths) / len(lengths)
    loss = sum(min(q, 1.0 - q) for q in language.p_verb) / len(language.p_verb)
    return 1.0 - ambiguous * loss / mean_len


def full_context_tags(sentence: Tensor) -> Tensor:
    """The tags of one sentence (L,) read from the whole sentence, by rule: each
    ambiguous word takes the sense of the next resolver to its right. Equal to the
    true tags on every sentence of the language, which proves its ceiling is 1."""
    ids = sentence.tolist()
    out = []
    for t, i in enumerate(ids):
        if i in _FIXED_TAG:
            out.append(_FIXED_TAG[i])
            continue
        nxt = next((j for j in ids[t + 1:] if j in _RESOLVES), None)
        if nxt is None:
            raise ValueError(f"ambiguous word at position {t} has no resolver to its right")
        out.append(_RESOLVES[nxt])
    return torch.tensor(out, dtype=torch.int64)


def resolver_position(sentence: Tensor) -> list:
    """For each position of one sentence (L,): the index of the token that decides
    its tag (its resolver for an ambiguous word, itself otherwise)."""
    ids = sentence.tolist()
    out = []
    for t, i in enumerate(ids):
        if i in _FIXED_TAG:
            out.append(t)
        else:
            out.append(next(u for u in range(t + 1, len(ids)) if ids[u] in _RESOLVES))
    return out


def is_ambiguous(tokens: Tensor) -> Tensor:
    """Bool tensor of ``tokens``' shape: True at the ambiguous words."""
    ids = torch.tensor([TOKEN_INDEX[w] for w in AMBIGUOUS_WORDS], device=tokens.device)
    return torch.isin(tokens, ids)


def decode(sentence: Tensor) -> list:
    """The words of one sentence (L,) of token ids."""
    return [TOKENS[i] for i in sentence.tolist()]


def decode_tags(tags: Tensor) -> list:
    return [TAGS[i] for i in tags.tolist()]
