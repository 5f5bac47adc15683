r"""Attention over a padded batch of encoder states: additive (Bahdanau) and
multiplicative (Luong dot and general) scores, the masked softmax that turns
them into weights, the context they read, and a decoder that attends at every step.

Shape legend: ``B`` batch, ``S`` source positions (the padded source length),
``Hq`` query features (the decoder's hidden size ``H``), ``Hk`` key features
(the encoder's memory size; the keys are also the values here), ``A`` the
additive attention's hidden size, ``E`` embedding size, ``V`` vocabulary,
``T`` positions of a sequence attending over itself.

One step of attention, for a query :math:`q \in \mathbb{R}^{H_q}` (the decoder
state) and the encoder states :math:`k_1 \dots k_S \in \mathbb{R}^{H_k}` of one
sequence with mask :math:`m_j \in \{0, 1\}` (1 at real tokens):

.. math::
    e_j = \operatorname{score}(q, k_j), \qquad
    a_j = \frac{m_j \exp(e_j)}{\sum_{j'} m_{j'} \exp(e_{j'})}, \qquad
    c = \sum_j a_j k_j

with the scores

.. math::
    \text{additive (Bahdanau et al., 2015):}\quad & e_j = v^\top \tanh(W_q q + W_k k_j)\\
    \text{dot (Luong et al., 2015):}\quad & e_j = q^\top k_j \quad (H_q = H_k)\\
    \text{general (Luong et al., 2015):}\quad & e_j = q^\top W k_j

``W_q`` is ``(A, Hq)``, ``W_k`` ``(A, Hk)``, ``v`` ``(A,)``, ``W`` ``(Hq, Hk)``
(torch's layout: a weight maps its second axis to its first).

What is masked: the padded source positions (``mask[b, j]`` False) get a weight
of exactly 0 and so add nothing to the context; the softmax is
:func:`rnncourse.masking.masked_softmax`, so a row with no real position gets
all-zero weights and a zero context (not NaN), and no large negative constant is
used (float16 neither overflows nor leaks weight onto padding). Masks are
boolean, True at real positions, as everywhere in the course.

Pitfalls (each is a wrong variant the lesson's checks name):

* masking after the softmax: the weights no longer sum to one over the real positions;
* the softmax over the wrong axis (the batch instead of the source positions);
* scores that never read the keys: the weights are then the same whatever the
  encoder said (the decoder of a widely copied tutorial computed them from its
  own state and input only);
* the context summed over the features instead of the source positions, or
  ``weights @ keys`` with weights ``(B, S)``, which mixes the batch: ``(B, 1, S) @ (B, S, Hk)``;
* filling masked scores with ``-1e9``: it does not fit in float16;
* in the decoder, the query taken from the previous state instead of the one
  just computed (:func:`attention_decoder_step` attends with the new state).
"""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Iterator, Optional

import torch
from torch import Tensor, nn

from . import functional as RF
from .cells import GRUCell
from .guard import BlockedError, Target, check_reference_allowed
from .masking import masked_softmax
from .seq2seq import DecoderBase
from .validation import ShapeError, check_like, check_shape, check_tensor

KINDS = ("additive", "dot", "general")


# ----------------------------------------------------------------------------
# argument checks

def _check_float(name: str, t) -> None:
    check_tensor(name, t)
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {t.dtype}")


def _check_attention_args(query: Tensor, keys: Tensor, mask: Tensor) -> tuple:
    """query (B, Hq) or (B, T, Hq), keys (B, S, Hk), mask (B, S) bool, on one device in one dtype."""
    _check_float("query", query)
    _check_float("keys", keys)
    check_tensor("mask", mask)
    if query.dim() not in (2, 3):
        raise ShapeError(f"query must have shape (B, Hq) (or (B, T, Hq) for T queries), got {tuple(query.shape)}")
    if keys.dim() != 3:
        raise ShapeError(f"keys must have shape (B, S, Hk), got {tuple(keys.shape)}")
    B, S, Hk = keys.shape
    if query.shape[0] != B:
        raise ShapeError(f"query has batch size {query.shape[0]} but keys have {B} "
                         f"(query (B, Hq) = {tuple(query.shape)}, keys (B, S, Hk) = {tuple(keys.shape)})")
    check_like("keys", keys, query, "query")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True at real positions), got dtype {mask.dtype}")
    check_shape("mask", mask, (B, S), "(B, S)")
    if mask.device != keys.device:
        raise ValueError(f"mask is on {mask.device} but keys are on {keys.device}")
    return B, S, Hk


def _check_weight(name: str, w: Tensor, shape: tuple, legend: str, like: Tensor) -> None:
    _check_float(name, w)
    check_shape(name, w, shape, legend)
    check_like(name, w, like, "query")


# ----------------------------------------------------------------------------
# scores, weights and context

def additive_scores(query: Tensor, keys: Tensor, weight_q: Tensor, weight_k: Tensor, v: Tensor) -> Tensor:
    r""":math:`e_{bj} = v^\top \tanh(W_q q_b + W_k k_{bj})`: (B, S), every position scored
    (padding too; :func:`attend` masks). weight_q (A, Hq), weight_k (A, Hk), v (A,).
    A query (B, T, Hq) (T queries per sequence) gives scores (B, T, S)."""
    projected_q = query @ weight_q.T  # (B, A) or (B, T, A)
    projected_k = keys @ weight_k.T  # (B, S, A): once per source, reusable at every decoder step
    if query.dim() == 3:
        return torch.tanh(projected_q.unsqueeze(2) + projected_k.unsqueeze(1)) @ v  # (B, T, S)
    return torch.tanh(projected_q.unsqueeze(1) + projected_k) @ v  # (B, S)


def dot_scores(query: Tensor, keys: Tensor) -> Tensor:
    r""":math:`e_{bj} = q_b^\top k_{bj}`: (B, S), or (B, T, S) for a query (B, T, Hq). Needs Hq = Hk."""
    if query.dim() == 3:
        return query @ keys.transpose(1, 2)  # (B, T, Hk) @ (B, Hk, S) -> (B, T, S)
    return (keys @ query.unsqueeze(-1)).squeeze(-1)  # (B, S, Hk) @ (B, Hk, 1) -> (B, S)


def general_scores(query: Tensor, keys: Tensor, weight: Tensor) -> Tensor:
    r""":math:`e_{bj} = q_b^\top W k_{bj}`: (B, S) or (B, T, S); weight W (Hq, Hk)."""
    return dot_scores(query @ weight, keys)  # q^T W is (B, [T,] Hk): then a dot with every key


def attend(scores: Tensor, keys: Tensor, mask: Tensor) -> tuple:
    r"""Weights :math:`a = \operatorname{masked\_softmax}(e)` over the source positions
    and the context :math:`c_b = \sum_j a_{bj} k_{bj}`.

    scores (B, S), keys (B, S, Hk), mask (B, S) bool -> (context (B, Hk), weights (B, S));
    scores (B, T, S) (T queries) -> (context (B, T, Hk), weights (B, T, S)).
    """
    if scores.dim() == 3:
        weights = masked_softmax(scores, mask.unsqueeze(1), dim=-1)  # (B, T, S): the same mask per query
        return weights @ keys, weights  # (B, T, S) @ (B, S, Hk) -> (B, T, Hk)
    weights = masked_softmax(scores, mask, dim=-1)  # (B, S): exact zeros on padding
    context = (weights.unsqueeze(1) @ keys).squeeze(1)  # (B, 1, S) @ (B, S, Hk) -> (B, Hk)
    return context, weights


def additive_attention(query: Tensor, keys: Tensor, mask: Tensor, weight_q: Tensor,
                       weight_k: Tensor, v: Tensor) -> tuple:
    r"""Bahdanau's attention: :math:`e_j = v^\top \tanh(W_q q + W_k k_j)`, masked softmax,
    :math:`c = \sum_j a_j k_j`.

    query (B, Hq), keys (B, S, Hk), mask (B, S) bool, weight_q (A, Hq), weight_k (A, Hk),
    v (A,) -> (context (B, Hk), weights (B, S)).
    """
    check_reference_allowed("attention.additive_attention")
    _, _, Hk = _check_attention_args(query, keys, mask)
    A = weight_q.shape[0] if isinstance(weight_q, Tensor) and weight_q.dim() == 2 else -1
    _check_weight("weight_q", weight_q, (A, query.shape[-1]), "(A, Hq)", query)
    _check_weight("weight_k", weight_k, (A, Hk), "(A, Hk)", query)
    _check_weight("v", v, (A,), "(A,)", query)
    return attend(additive_scores(query, keys, weight_q, weight_k, v), keys, mask)


def dot_attention(query: Tensor, keys: Tensor, mask: Tensor) -> tuple:
    r"""Luong's dot attention: :math:`e_j = q^\top k_j`, masked softmax, :math:`c = \sum_j a_j k_j`.

    query (B, H), keys (B, S, H), mask (B, S) bool -> (context (B, H), weights (B, S)).
    """
    check_reference_allowed("attention.dot_attention")
    _, _, Hk = _check_attention_args(query, keys, mask)
    if query.shape[-1] != Hk:
        raise ShapeError(f"dot attention needs query and keys of one size, got query (B, Hq) = "
                         f"{tuple(query.shape)} and keys (B, S, Hk) = {tuple(keys.shape)}; "
                         "use general attention (a weight (Hq, Hk)) between different sizes")
    return attend(dot_scores(query, keys), keys, mask)


def general_attention(query: Tensor, keys: Tensor, mask: Tensor, weight: Tensor) -> tuple:
    r"""Luong's general attention: :math:`e_j = q^\top W k_j`, masked softmax, :math:`c = \sum_j a_j k_j`.

    query (B, Hq), keys (B, S, Hk), mask (B, S) bool, weight (Hq, Hk)
    -> (context (B, Hk), weights (B, S)).
    """
    check_reference_allowed("attention.general_attention")
    _, _, Hk = _check_attention_args(query, keys, mask)
    _check_weight("weight", weight, (query.shape[-1], Hk), "(Hq, Hk)", query)
    return attend(general_scores(query, keys, weight), keys, mask)


def self_attention(x: Tensor, mask: Tensor) -> tuple:
    r"""A sequence attending over itself (scaled dot product, no projections):

    .. math::
        a_{t\cdot} = \operatorname{masked\_softmax}_j\Big(\frac{x_t^\top x_j}{\sqrt{D}}\Big), \qquad
        y_t = \sum_j a_{tj} x_j

    every position is a query, every real position a key. x (B, T, D), mask (B, T) bool
    -> (y (B, T, D), weights (B, T, T)). Its cost is T^2 D per sequence, against the
    recurrence's T D^2 in T sequential steps.
    """
    check_reference_allowed("attention.self_attention")
    _check_float("x", x)
    if x.dim() != 3:
        raise ShapeError(f"x must have shape (B, T, D), got {tuple(x.shape)}")
    check_shape("mask", mask, x.shape[:2], "(B, T)")
    if mask.dtype != torch.bool:
        raise TypeError(f"mask must be a bool tensor (True at real positions), got dtype {mask.dtype}")
    scores = x @ x.transpose(1, 2) / math.sqrt(x.shape[-1])  # (B, T, T): row t is query t
    weights = masked_softmax(scores, mask.unsqueeze(1), dim=-1)  # keys masked; (B, T, T)
    return weights @ x, weights  # (B, T, D), (B, T, T)


# ----------------------------------------------------------------------------
# modules

class AdditiveAttention(nn.Module):
    r"""Bahdanau's additive attention, :func:`additive_attention` with parameters
    ``weight_q`` (A, Hq), ``weight_k`` (A, Hk) and ``v`` (A,), initialised
    uniformly in :math:`\pm 1/\sqrt{\text{fan-in}}` like ``nn.Linear``.

    forward(query (B, Hq), keys (B, S, Hk), mask (B, S)) -> (context (B, Hk), weights (B, S)).
    """

    def __init__(self, query_size: int, key_size: int, attn_size: int, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.weight_q = nn.Parameter(torch.empty(attn_size, query_size, **kw))
        self.weight_k = nn.Parameter(torch.empty(attn_size, key_size, **kw))
        self.v = nn.Parameter(torch.empty(attn_size, **kw))
        for p, fan_in in ((self.weight_q, query_size), (self.weight_k, key_size), (self.v, attn_size)):
            nn.init.uniform_(p, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> tuple:
        return additive_attention(query, keys, mask, self.weight_q, self.weight_k, self.v)


class DotAttention(nn.Module):
    """Luong's dot attention, :func:`dot_attention` (no parameters; Hq = Hk)."""

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> tuple:
        return dot_attention(query, keys, mask)


class GeneralAttention(nn.Module):
    r"""Luong's general attention, :func:`general_attention` with ``weight`` (Hq, Hk),
    initialised uniformly in :math:`\pm 1/\sqrt{H_k}`."""

    def __init__(self, query_size: int, key_size: int, device=None, dtype=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(query_size, key_size, device=device, dtype=dtype))
        nn.init.uniform_(self.weight, -1 / math.sqrt(key_size), 1 / math.sqrt(key_size))

    def forward(self, query: Tensor, keys: Tensor, mask: Tensor) -> tuple:
        return general_attention(query, keys, mask, self.weight)


def make_attention(kind: str, query_size: int, key_size: int, attn_size: Optional[int] = None,
                   device=None, dtype=None) -> nn.Module:
    """One of :data:`KINDS`: "additive" (attn_size A, default the query size), "dot", "general"."""
    if kind == "additive":
        return AdditiveAttention(query_size, key_size, attn_size or query_size, device, dtype)
    if kind == "dot":
        if query_size != key_size:
            raise ValueError(f"dot attention needs query_size == key_size, got {query_size} and {key_size}")
        return DotAttention()
    if kind == "general":
        return GeneralAttention(query_size, key_size, device, dtype)
    raise ValueError(f"attention kind must be one of {KINDS}, got {kind!r}")


# ----------------------------------------------------------------------------
# the decoder step, and what blocks it while a learner writes their own

_decoder_block: list = []


def check_decoder_allowed() -> None:
    """Raise :class:`BlockedError` while a learner's decoder step is being checked.

    That check hands the learner an attention function and a cell to call (the
    package's own), so it cannot block the reference models wholesale; it blocks
    the decoder step, which is what computes its answer.
    """
    if _decoder_block:
        raise BlockedError(
            f"rnncourse.attention's decoder step was called {_decoder_block[-1]}. It is what "
            "your step is checked against, so it is switched off while your function runs: "
            "call the cell and the attention you are given, and combine them yourself.")


@contextlib.contextmanager
def _decoder_off(why: str) -> Iterator[None]:
    _decoder_block.append(why)
    try:
        yield
    finally:
        _decoder_block.pop()


DECODER_STEP = Target("the course's attention decoder step", _decoder_off)


def attention_decoder_step(y_prev: Tensor, s_prev: Tensor, memory: Tensor, mask: Tensor,
                           embedding: Tensor, cell: Callable, attention: Callable,
                           weight_out: Tensor, bias_out: Tensor) -> tuple:
    r"""One step of a decoder that attends with its new state (Luong et al., 2015):

    .. math::
        x_t = E[y_{t-1}], \qquad s_t = \operatorname{cell}(x_t, s_{t-1}), \qquad
        (c_t, a_t) = \operatorname{attention}(s_t, k_{1..S}, m), \qquad
        z_t = W_{out} [s_t; c_t] + b_{out}

    y_prev (B,) token ids, s_prev (B, H), memory (B, S, Hk), mask (B, S) bool,
    embedding (V, E), ``cell(x (B, E), s (B, H)) -> (B, H)``,
    ``attention(query (B, H), keys (B, S, Hk), mask) -> (context (B, Hk), weights (B, S))``,
    weight_out (V, H + Hk), bias_out (V,) -> (logits (B, V), s_t (B, H), weights (B, S)).

    Pitfall: the query is the state just computed, :math:`s_t`; attending with
    :math:`s_{t-1}` reads the source with the state that chose the previous token.
    """
    check_reference_allowed("attention.attention_decoder_step")
    check_decoder_allowed()
    x = embedding[y_prev]  # (B, E)
    s = cell(x, s_prev)  # (B, H)
    context, weights = attention(s, memory, mask)  # (B, Hk), (B, S)
    logits = torch.cat([s, context], dim=-1) @ weight_out.T + bias_out  # (B, V)
    return logits, s, weights


class AttentionDecoder(DecoderBase):
    r"""A GRU decoder that attends over the encoder's states at every step,
    :func:`attention_decoder_step` with the package's :class:`rnncourse.GRUCell`,
    an attention of :data:`KINDS` and a linear read-out of :math:`[s_t; c_t]`.

    ``AttentionDecoder(vocab_size V, embed_size E, hidden_size H, memory_size Hk,
    attention="additive", attn_size=None)``. Parameters: ``embedding.weight`` (V, E),
    ``cell`` (a GRUCell(E, H)), ``attention`` (see :func:`make_attention`),
    ``out.weight`` (V, H + Hk), ``out.bias`` (V,).

    It follows the decoder protocol of :mod:`rnncourse.seq2seq`, so
    :class:`rnncourse.seq2seq.Seq2Seq`'s teacher forcing, greedy decoding and beam
    search run it unchanged:

    * ``init_state(encoder_state)``: the top layer of the encoder's final state,
      ``(L, B, H) -> (B, H)`` (h of an LSTM's pair);
    * ``step(y_prev (B,) long, state (B, H), memory (B, S, Hk), memory_mask (B, S) bool)
      -> (logits (B, V), state (B, H), weights (B, S))``;
    * ``reorder_state(state, index)``: rows of the batch (axis 0);
    * ``forward(tgt_in (B, T), state, memory, memory_mask)``: the steps in a loop,
      returning logits (B, T, V), the last state and the weights (B, T, S).
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, memory_size: int,
                 attention: str = "additive", attn_size: Optional[int] = None, device=None, dtype=None):
        super().__init__()
        kw = {"device": device, "dtype": dtype}
        self.vocab_size, self.hidden_size, self.memory_size = vocab_size, hidden_size, memory_size
        self.kind = attention
        self.embedding = nn.Embedding(vocab_size, embed_size, **kw)
        self.cell = GRUCell(embed_size, hidden_size, **kw)
        self.attention = make_attention(attention, hidden_size, memory_size, attn_size, **kw)
        self.out = nn.Linear(hidden_size + memory_size, vocab_size, **kw)

    def step(self, y_prev: Tensor, state: Tensor, memory: Tensor, memory_mask: Tensor) -> tuple:
        check_tensor("y_prev", y_prev)
        if y_prev.dim() != 1 or y_prev.is_floating_point() or y_prev.dtype == torch.bool:
            raise ShapeError(f"y_prev must be token ids of shape (B,) and an integer dtype, got "
                             f"{tuple(y_prev.shape)} {y_prev.dtype}")
        B = y_prev.shape[0]
        _check_float("state", state)
        check_shape("state", state, (B, self.hidden_size), "(B, H)")
        _check_attention_args(state, memory, memory_mask)
        if memory.shape[-1] != self.memory_size:
            raise ShapeError(f"memory must have shape (B, S, Hk) with Hk = {self.memory_size}, "
                             f"got {tuple(memory.shape)}")
        return attention_decoder_step(y_prev, state, memory, memory_mask, self.embedding.weight,
                                      self.cell, self.attention, self.out.weight, self.out.bias)

    def forward(self, tgt_in: Tensor, state: Tensor, memory: Tensor, memory_mask: Tensor) -> tuple:
        """Teacher forcing: the same numbers as :meth:`step` in a loop (tested), faster.
        The attention does not feed back into the recurrence, so the cell runs over all T
        inputs first and the T queries then attend at once: (B, T, S) scores."""
        check_tensor("tgt_in", tgt_in)
        if tgt_in.dim() != 2 or tgt_in.is_floating_point() or tgt_in.dtype == torch.bool:
            raise ShapeError(f"tgt_in must be token ids of shape (B, T), got {tuple(tgt_in.shape)} {tgt_in.dtype}")
        check_shape("state", state, (tgt_in.shape[0], self.hidden_size), "(B, H)")
        c = self.cell
        B, T = tgt_in.shape
        x = self.embedding(tgt_in).reshape(B * T, -1)  # (B*T, E)
        gx = RF.input_projection(x, c.weight_ih, c.bias_ih).view(B, T, -1)  # (B, T, 3H): all at once
        states = []
        for t in range(T):
            state = RF.gru_step(gx[:, t], state, c.weight_hh, c.bias_hh)  # (B, H): GRUCell's equations
            states.append(state)
        queries = torch.stack(states, dim=1)  # (B, T, H): s_1 .. s_T
        context, weights = self.attention(queries, memory, memory_mask)  # (B, T, Hk), (B, T, S)
        logits = self.out(torch.cat([queries, context], dim=-1))  # (B, T, V)
        return logits, state, weights

    def init_state(self, encoder_state) -> Tensor:
        h = encoder_state[0] if isinstance(encoder_state, tuple) else encoder_state
        if h.dim() != 3 or h.shape[2] != self.hidden_size:
            raise ShapeError(f"the encoder's state must have shape (L, B, H) with H = {self.hidden_size} "
                             f"(the decoder's hidden size), got {tuple(h.shape)}")
        return h[-1]  # (B, H): the top layer

    def reorder_state(self, state: Tensor, index: Tensor) -> Tensor:
        return state.index_select(0, index)  # (N, H)
