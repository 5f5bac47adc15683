"""Wrong learners of lesson 10, registered like those of :mod:`classroom.wrong`
but in a registry of their own (``LEARNERS`` here), so that the shared one keeps
the lessons whose checks tests/test_checks_learners.py knows: the check tests
call them, the simulated class hands in their bodies. Bodies use only
``torch``, ``rnncourse`` and the notebook's ``masked_softmax`` (the correct one
below, as the instructor's is in the notebook).
"""
from __future__ import annotations

import torch

import rnncourse  # noqa: F401  (bodies may name it)
from .wrong import Learner

LEARNERS: dict = {}  # exercise -> {student: Learner}


def learner(exercise: str, student: str, diagnosis: str):
    def register(fn):
        LEARNERS.setdefault(exercise, {})[student] = Learner(exercise, student, fn, diagnosis)
        return fn
    return register


def shared(exercise: str) -> dict:
    """student -> (function, diagnosis), the shape of the check tests' tables."""
    return {s: (w.fn, w.diagnosis) for s, w in LEARNERS.get(exercise, {}).items()}

# ---------------------------------------------------------------- masked_softmax


@learner("masked_softmax", "mask_after_softmax", "mask is applied after the softmax")
def masked_softmax_after(scores, mask):
    return torch.softmax(scores, dim=-1) * mask


@learner("masked_softmax", "wrong_axis", "wrong axis")
def masked_softmax_wrong_axis(scores, mask):
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=0)
    return torch.nan_to_num(w, nan=0.0)


@learner("masked_softmax", "fill_minus_1e9", "-1e9")
def masked_softmax_minus_1e9(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)


@learner("masked_softmax", "fill_1e9_float16", "float16")
def masked_softmax_1e9_guarded(scores, mask):
    w = torch.softmax(scores.masked_fill(~mask, -1e9), dim=-1)  # all-padding rows come out uniform
    return torch.where(mask, w, torch.zeros_like(w))  # ... and are zeroed here: right, except in float16


@learner("masked_softmax", "nan_row", "came out as NaN")
def masked_softmax_nan(scores, mask):
    return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)


@learner("masked_softmax", "not_masked", "not masked at all")
def masked_softmax_plain(scores, mask):
    return torch.softmax(scores, dim=-1)


@learner("masked_softmax", "cpu_tensor", "mixes devices")
def masked_softmax_cpu(scores, mask):
    mask = mask.expand(scores.shape)
    zeros = torch.zeros(scores.shape, dtype=scores.dtype)  # on the CPU, whatever the inputs' device
    e = torch.where(mask, torch.exp(scores - scores.amax(-1, keepdim=True)), zeros)
    total = e.sum(-1, keepdim=True)
    return e / torch.where(total > 0, total, torch.ones_like(total))


@learner("masked_softmax", "detached", "gradient")
def masked_softmax_detached(scores, mask):
    w = torch.softmax(scores.detach().masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(w, nan=0.0)


@learner("masked_softmax", "uses_library", "switched off")
def masked_softmax_library(scores, mask):
    return rnncourse.masking.masked_softmax(scores, mask)


# ---------------------------------------------------------------- additive_attention

def masked_softmax(scores, mask):
    """The notebook's helper, correct (bodies below call it, as the notebook's functions do)."""
    w = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return torch.nan_to_num(w, nan=0.0)


@learner("additive_attention", "keys_ignored", "stay the same when the encoder states")
def additive_keys_ignored(query, keys, mask, W_q, W_k, v):
    e = (torch.tanh(query @ W_q.T) @ v).unsqueeze(1).expand(mask.shape)  # (B, S): no key in it
    w = masked_softmax(e, mask)
    return (w.unsqueeze(1) @ keys).squeeze(1), w


@learner("additive_attention", "context_features", "summed over the features axis")
def additive_context_features(query, keys, mask, W_q, W_k, v):
    w = masked_softmax(torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v, mask)
    return (w.unsqueeze(-1) * keys).sum(-1), w


@learner("additive_attention", "weights_matmul_keys", "every sequence's keys")
def additive_weights_matmul(query, keys, mask, W_q, W_k, v):
    w = masked_softmax(torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v, mask)
    return w @ keys, w


@learner("additive_attention", "mask_after_softmax", "mask is applied after the softmax")
def additive_mask_after(query, keys, mask, W_q, W_k, v):
    w = torch.softmax(torch.tanh((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v, dim=-1) * mask
    return (w.unsqueeze(1) @ keys).squeeze(1), w


@learner("additive_attention", "no_tanh", "tanh is missing")
def additive_no_tanh(query, keys, mask, W_q, W_k, v):
    w = masked_softmax(((query @ W_q.T).unsqueeze(1) + keys @ W_k.T) @ v, mask)
    return (w.unsqueeze(1) @ keys).squeeze(1), w


@learner("additive_attention", "uses_library", "switched off")
def additive_library(query, keys, mask, W_q, W_k, v):
    return rnncourse.attention.additive_attention(query, keys, mask, W_q, W_k, v)


# ---------------------------------------------------------------- multiplicative_attention

@learner("multiplicative_attention", "scaled", "sqrt(Hk)")
def multiplicative_scaled(query, keys, mask, W=None):
    q = query if W is None else query @ W
    w = masked_softmax((keys @ q.unsqueeze(-1)).squeeze(-1) / keys.shape[-1] ** 0.5, mask)
    return (w.unsqueeze(1) @ keys).squeeze(1), w


@learner("multiplicative_attention", "batch_axis", "wrong axis")
def multiplicative_batch_axis(query, keys, mask, W=None):
    q = query if W is None else query @ W
    e = (keys @ q.unsqueeze(-1)).squeeze(-1).masked_fill(~mask, float("-inf"))
    w = torch.nan_to_num(torch.softmax(e, dim=0), nan=0.0)
    return (w.unsqueeze(1) @ keys).squeeze(1), w


@learner("multiplicative_attention", "keys_ignored", "stay the same when the encoder states")
def multiplicative_keys_ignored(query, keys, mask, W=None):
    q = query if W is None else query @ W
    e = q.sum(-1, keepdim=True).expand(mask.shape)  # one score per row, the same at every position
    w = masked_softmax(e, mask)
    return (w.unsqueeze(1) @ keys).squeeze(1), w


@learner("multiplicative_attention", "cpu_context", "mixes devices")
def multiplicative_cpu_context(query, keys, mask, W=None):
    q = query if W is None else query @ W
    w = masked_softmax((keys @ q.unsqueeze(-1)).squeeze(-1), mask)
    context = torch.zeros(keys.shape[0], keys.shape[2], dtype=keys.dtype)  # CPU
    for j in range(keys.shape[1]):
        context = context + w[:, j:j + 1] * keys[:, j]
    return context, w


# ---------------------------------------------------------------- attention_decoder_step

@learner("attention_decoder_step", "query_old", "previous state s_prev")
def step_query_old(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
    context, weights = attention(s_prev, memory, mask)
    s_t = cell(embedding[y_prev], s_prev)
    return torch.cat([s_t, context], -1) @ W_out.T + b_out, s_t, weights


@learner("attention_decoder_step", "context_first", "[context; s_t]")
def step_context_first(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
    s_t = cell(embedding[y_prev], s_prev)
    context, weights = attention(s_t, memory, mask)
    return torch.cat([context, s_t], -1) @ W_out.T + b_out, s_t, weights


@learner("attention_decoder_step", "probabilities", "probabilities")
def step_probabilities(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
    s_t = cell(embedding[y_prev], s_prev)
    context, weights = attention(s_t, memory, mask)
    return torch.softmax(torch.cat([s_t, context], -1) @ W_out.T + b_out, -1), s_t, weights


@learner("attention_decoder_step", "uses_library", "switched off")
def step_library(y_prev, s_prev, memory, mask, embedding, cell, attention, W_out, b_out):
    return rnncourse.attention.attention_decoder_step(y_prev, s_prev, memory, mask, embedding, cell,
                                                      attention, W_out, b_out)
