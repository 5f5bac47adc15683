r"""Decoding a trained decoder: greedy search and batched beam search.

Both work on any decoder through one function, the *step*::

    step(y_prev, state) -> (logits, state)
    y_prev: (N,) int64, the previous token of each row; logits: (N, V)

and :func:`beam_search` also needs ``reorder(state, index)``, which returns the
state of rows ``index`` (N',) int64 (rows repeated or dropped). The state is
opaque to these functions: a tensor, a tuple of tensors, with encoder memory
inside it if the decoder reads one (:class:`rnncourse.seq2seq.Seq2Seq` builds
both functions from its decoder).

Shape legend: ``B`` sources decoded at once, ``K`` beam width, ``V``
vocabulary, ``L`` the longest output (at most ``max_len``).

A hypothesis :math:`y = (y_1, \dots, y_n)` has the score

.. math::
    \log p(y) = \sum_{t=1}^{n} \log \operatorname{softmax}(z_t)_{y_t}, \qquad
    \text{normalised: } \frac{\log p(y)}{n^{\alpha}}

where ``n`` counts the generated tokens, EOS included (BOS is not generated).
``alpha = 0`` is no normalisation; ``alpha = 1`` the mean log-probability per
token. Without it, every extra token adds a negative term, so the search
prefers short outputs.

What "finished" means: a hypothesis ends when it emits EOS, or when it reaches
``max_len`` tokens without one (it is then returned as it is, unfinished).
In the output, every position after a row's end holds ``pad``.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple, Tuple

import torch
from torch import Tensor

from .data.seq2seq import BOS, EOS, PAD
from .guard import check_reference_allowed

Step = Callable[[Tensor, Any], Tuple[Tensor, Any]]
Reorder = Callable[[Any, Tensor], Any]


class Decoded(NamedTuple):
    """tokens (B, L) int64, ``pad`` after each row's end; lengths (B,) int64, tokens
    generated (EOS included); scores (B,) the (normalised, for beam search) log-probability."""
    tokens: Tensor
    lengths: Tensor
    scores: Tensor


def _check(batch_size: int, max_len: int) -> None:
    for name, v in (("batch_size", batch_size), ("max_len", max_len)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ValueError(f"{name} must be an int >= 1, got {v!r}")


def _logits(out, N: int, where: str) -> Tensor:
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], Tensor)):
        raise TypeError(f"step must return (logits, state), got {type(out).__name__}")
    z = out[0]
    if z.dim() != 2 or z.shape[0] != N:
        raise ValueError(f"step returned logits of shape {tuple(z.shape)} {where}; expected (N, V), N = {N}")
    return z


def greedy_decode(step: Step, state: Any, batch_size: int, max_len: int, *, bos: int = BOS,
                  eos: int = EOS, pad: int = PAD, device=None) -> Decoded:
    r"""Feed back the most probable token, :math:`y_t = \arg\max_v z_{t,v}`, from
    ``y_0 = bos``, until every row has emitted ``eos`` or ``max_len`` tokens.

    Each row stops at its OWN EOS: its later tokens are ``pad`` (the step keeps
    running for it while others go on, and its outputs are ignored). The loop
    ends as soon as every row has stopped, so ``L <= max_len``.
    """
    check_reference_allowed("decoding.greedy_decode")
    _check(batch_size, max_len)
    y = torch.full((batch_size,), bos, dtype=torch.int64, device=device)  # (B,)
    done = torch.zeros(batch_size, dtype=torch.bool, device=device)  # (B,)
    lengths = torch.full((batch_size,), max_len, dtype=torch.int64, device=device)
    scores = None
    tokens = []
    for t in range(max_len):
        logits, state = step(y, state)
        logits = _logits((logits, state), batch_size, f"at step {t}")
        logp = torch.log_softmax(logits.detach(), dim=-1)  # (B, V)
        best, y = logp.max(dim=-1)  # (B,), (B,)
        scores = torch.where(done, 0.0, best) if scores is None else scores + torch.where(done, 0.0, best)
        y = torch.where(done, torch.full_like(y, pad), y)  # rows already ended: pad
        tokens.append(y)
        ended = ~done & (y == eos)
        lengths = torch.where(ended, t + 1, lengths)
        done = done | ended
        if bool(done.all()):
            break
    return Decoded(torch.stack(tokens, dim=1), lengths, scores)  # (B, L)


def beam_search(step: Step, state: Any, reorder: Reorder, batch_size: int, beam_width: int,
                max_len: int, *, alpha: float = 1.0, bos: int = BOS, eos: int = EOS,
                pad: int = PAD, device=None) -> Decoded:
    r"""Batched beam search with a shrinking beam (as in Jurafsky & Martin, *Speech
    and Language Processing*, "beam search").

    Per source: the beam starts as the one hypothesis ``(bos)`` with score 0
    and width ``k = K``. At each step every live hypothesis is extended by every
    token; of these candidates the ``k`` with the highest :math:`\log p` are
    kept. A kept candidate that ends in EOS is *finished*: it is set aside (and
    kept until the end) and the width shrinks by one; the others are the next
    live hypotheses. The search ends when no hypothesis is live or after
    ``max_len`` steps; the live ones then are candidates too (unfinished, ``n =
    max_len``). The answer is the candidate with the best normalised score
    :math:`\log p(y) / n^\alpha` (see the module docstring).

    Facts the tests check: with ``K = 1`` this is :func:`greedy_decode`; when
    ``K`` is at least the number of hypotheses of every step, nothing is pruned
    and the answer is the exhaustive search's.

    step, reorder: see the module docstring; ``state`` holds B rows, one per source
    returns: :class:`Decoded`, the best hypothesis of each source, scores normalised
    """
    check_reference_allowed("decoding.beam_search")
    _check(batch_size, max_len)
    if not isinstance(beam_width, int) or isinstance(beam_width, bool) or beam_width < 1:
        raise ValueError(f"beam_width must be an int >= 1, got {beam_width!r}")
    B, K = batch_size, beam_width
    rows = torch.arange(B, device=device)  # (B,)
    state = reorder(state, rows.repeat_interleave(K))  # B*K rows, source b at b*K .. b*K+K-1
    neg_inf = torch.tensor(float("-inf"), device=device)
    # live hypotheses: (B, K) scores, -inf at empty slots; only slot 0 starts live
    live = torch.full((B, K), float("-inf"), device=device)
    live[:, 0] = 0.0
    seqs = torch.zeros(B, K, 0, dtype=torch.int64, device=device)  # (B, K, t)
    width = torch.full((B,), K, dtype=torch.int64, device=device)  # k of each source
    # finished hypotheses: at most K per source, since each one shrinks the beam
    fin_score = torch.full((B, K), float("-inf"), device=device)
    fin_len = torch.ones(B, K, dtype=torch.int64, device=device)
    fin_seq = torch.full((B, K, max_len), pad, dtype=torch.int64, device=device)
    count = torch.zeros(B, dtype=torch.int64, device=device)
    y = torch.full((B * K,), bos, dtype=torch.int64, device=device)
    for t in range(1, max_len + 1):
        logits, state = step(y, state)
        logits = _logits((logits, state), B * K, f"at step {t}")
        logp = torch.log_softmax(logits.detach(), dim=-1)  # (B*K, V)
        live = live.to(logp.dtype)
        V = logp.shape[-1]
        cand = (live.unsqueeze(-1) + logp.view(B, K, V)).view(B, K * V)  # (B, K*V)
        top, index = cand.topk(min(K, K * V), dim=1)  # (B, K), best first
        keep = (torch.arange(K, device=device)[None, :] < width[:, None]) & (top > neg_inf)
        hyp, tok = index // V, index % V  # (B, K) each
        seqs = torch.cat([seqs.gather(1, hyp.unsqueeze(-1).expand(B, K, seqs.shape[-1])),
                          tok.unsqueeze(-1)], dim=2)  # (B, K, t)
        ended = keep & (tok == eos)  # (B, K)
        if bool(ended.any()):
            b_idx, k_idx = ended.nonzero(as_tuple=True)
            slot = (count[:, None] + ended.long().cumsum(1) - 1)[b_idx, k_idx]
            fin_score = fin_score.to(logp.dtype)
            fin_score[b_idx, slot] = top[b_idx, k_idx]
            fin_len[b_idx, slot] = t
            fin_seq[b_idx, slot, :t] = seqs[b_idx, k_idx]
            count = count + ended.sum(1)
            width = width - ended.sum(1)
        live = torch.where(keep & ~ended, top, neg_inf.to(top.dtype))  # (B, K)
        if not bool((live > neg_inf).any()):
            break
        state = reorder(state, (rows[:, None] * K + hyp).view(-1))
        y = tok.reshape(-1)
    # candidates: finished ones and those still live after the last step
    n_live = seqs.shape[-1]
    live_seq = torch.full((B, K, max_len), pad, dtype=torch.int64, device=device)
    live_seq[:, :, :n_live] = seqs
    scores = torch.cat([fin_score.to(live.dtype), live], dim=1)  # (B, 2K)
    lengths = torch.cat([fin_len, torch.full_like(fin_len, n_live)], dim=1)  # (B, 2K)
    normalised = scores / lengths.to(scores.dtype) ** alpha  # -inf stays -inf
    best = normalised.argmax(dim=1)  # (B,)
    all_seq = torch.cat([fin_seq, live_seq], dim=1)  # (B, 2K, max_len)
    tokens = all_seq[rows, best]  # (B, max_len)
    out_len = lengths[rows, best]
    L = int(out_len.max())
    return Decoded(tokens[:, :L], out_len, normalised[rows, best])
