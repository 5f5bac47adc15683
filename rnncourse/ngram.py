r"""Count-based n-gram character models, smoothed: the baselines of lesson 08.

An n-gram model predicts the next character from the previous ``n - 1`` only
(the Markov assumption a recurrent model drops). Counts alone give probability 0
to anything unseen, so the estimate of order ``j`` is interpolated with the one
of order ``j - 1`` by Witten-Bell smoothing:

.. math::
    P_j(a \mid h) = \frac{c(h, a) + u(h)\, P_{j-1}(a \mid h')}{c(h) + u(h)},

with :math:`h` the last ``j - 1`` characters, :math:`h'` its last ``j - 2``,
:math:`c(h, a)` how often ``a`` followed ``h`` in the training text,
:math:`c(h) = \sum_a c(h, a)` and :math:`u(h)` the number of different
characters seen after ``h``. A context never seen (:math:`c(h) = 0`) falls back
to :math:`P_{j-1}` entirely. The recursion starts from the uniform distribution
over the vocabulary (order 0), so every probability is positive: ``n = 1`` is the
unigram model, ``n = 2`` the bigram, and so on.

Shapes: ids are (N,) int64 in ``[0, V)``. Contexts are coded as base-V integers,
so ``V ** (n - 1)`` must fit in an int64 (n up to 9 for V = 100).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor


def _codes(ids: Tensor, V: int, length: int) -> Tensor:
    """(N - length + 1,): the base-V code of every window of ``length`` ids."""
    N = ids.numel()
    code = torch.zeros(N - length + 1, dtype=torch.long)
    for j in range(length):
        code = code * V + ids[j:N - length + 1 + j]
    return code


def _lookup(keys: Tensor, values: Tensor, queries: Tensor) -> Tensor:
    """values[k] where keys[k] == query (keys sorted and unique), 0 where absent."""
    if keys.numel() == 0:
        return torch.zeros_like(queries, dtype=values.dtype)
    pos = torch.searchsorted(keys, queries).clamp_max(keys.numel() - 1)
    return torch.where(keys[pos] == queries, values[pos], torch.zeros((), dtype=values.dtype))


class NGram:
    """A Witten-Bell smoothed n-gram model of character ids, fitted on ``ids``."""

    def __init__(self, ids: Tensor, n: int, V: int):
        if n < 1:
            raise ValueError(f"n must be at least 1, got {n}")
        if (V ** max(n - 1, 1)) * V >= 2 ** 62:
            raise ValueError(f"V ** n = {V} ** {n} does not fit the context codes")
        ids = ids.long().cpu()
        self.n, self.V = n, V
        self.tables = []  # order j = 1..n: (keys of (h, a), c(h, a), keys of h, c(h), u(h))
        for j in range(1, n + 1):
            grams = _codes(ids, V, j)  # (h, a) coded together: h * V + a
            keys, counts = torch.unique(grams, return_counts=True)  # sorted
            ctx, inverse = torch.unique(keys // V, return_inverse=True)
            c_h = torch.zeros(ctx.numel(), dtype=torch.long).index_add_(0, inverse, counts)
            u_h = torch.zeros(ctx.numel(), dtype=torch.long).index_add_(0, inverse, torch.ones_like(counts))
            self.tables.append((keys, counts, ctx, c_h, u_h))

    def log2_probs(self, ids: Tensor) -> Tensor:
        """(N - n + 1,) float64: log2 P(ids[i] | the n - 1 ids before it), for every
        position that has n - 1 ids before it (i >= n - 1)."""
        ids = ids.long().cpu()
        N, n, V = ids.numel(), self.n, self.V
        if N < n:
            raise ValueError(f"need at least n = {n} ids, got {N}")
        p = torch.full((N - n + 1,), 1.0 / V, dtype=torch.float64)  # order 0: uniform
        for j, (keys, counts, ctx, c_h, u_h) in enumerate(self.tables, start=1):
            grams = _codes(ids[n - j:], V, j)  # the last j ids of each window
            c_ha = _lookup(keys, counts, grams).double()
            ch = _lookup(ctx, c_h, grams // V).double()
            uh = _lookup(ctx, u_h, grams // V).double()
            seen = ch > 0
            p = torch.where(seen, (c_ha + uh * p) / torch.where(seen, ch + uh, torch.ones_like(ch)), p)
        return p.log2()

    def bits_per_char(self, ids: Tensor) -> float:
        """Average -log2 P over the positions :meth:`log2_probs` scores."""
        return float(-self.log2_probs(ids).mean())


def ngram_bits(train: Tensor, val: Tensor, V: int, orders=range(1, 8)) -> dict:
    """{n: validation bits per character of the n-gram fitted on ``train``}, every model
    scored on the same positions (those with max(orders) - 1 characters before them),
    plus the uniform model as n = 0 (log2 V)."""
    top = max(orders)
    out = {0: math.log2(V)}
    for n in orders:
        out[n] = float(-NGram(train, n, V).log2_probs(val)[top - n:].mean())
    return out
