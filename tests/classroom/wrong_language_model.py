"""Lesson 08's learners, right and wrong, written once for the check tests
(tests/test_checks_language_model.py) and the simulated class (a08_language_model.py).

Registered like the learners of :mod:`classroom.wrong`, but in a registry of their
own (``LEARNERS`` here, as lesson 10's in :mod:`classroom.wrong_attention`): the
student ids are the check tests' (``ppl_exp_sum``, ...), and the simulated class
hands in only some of them under its own ids, which the shared registry's test
(tests/test_checks_learners.py) does not expect. ``shared("perplexity")`` lists
them; each wrong one names the phrase the check's message must contain. Bodies
use only ``torch`` and ``math``, which the notebook imports.
"""
from __future__ import annotations

import math

import torch

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

# ---------------------------------------------------------------- perplexity


def perplexity_right(logits, targets, mask):
    V = logits.shape[-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                            reduction="none").view(targets.shape)
    mean = (nll * mask).sum() / mask.sum()
    return mean.exp(), mean / math.log(2)


def perplexity_indexing(logits, targets, mask):
    # boolean indexing keeps the real tokens only; log-softmax by hand
    logp = logits - logits.logsumexp(-1, keepdim=True)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)[mask]
    bits = nll.mean() / math.log(2)
    return 2 ** bits, bits


@learner("perplexity", "ppl_exp_sum", "exponentiate the summed loss")
def perplexity_exp_sum(logits, targets, mask):
    V = logits.shape[-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                            reduction="none").view(targets.shape)
    total = (nll * mask).sum()
    return total.exp(), total / math.log(2)


@learner("perplexity", "ppl_counts_pads", "padded positions are counted")
def perplexity_counts_pads(logits, targets, mask):
    V = logits.shape[-1]
    mean = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1))
    return mean.exp(), mean / math.log(2)


@learner("perplexity", "ppl_bits_in_nats", "mix the log bases")
def perplexity_bits_in_nats(logits, targets, mask):
    V = logits.shape[-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                            reduction="none").view(targets.shape)
    mean = (nll * mask).sum() / mask.sum()
    return 2 ** mean, mean


@learner("perplexity", "ppl_per_sequence", "average per-sequence perplexities")
def perplexity_per_sequence(logits, targets, mask):
    V = logits.shape[-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                            reduction="none").view(targets.shape)
    per_seq = ((nll * mask).sum(1) / mask.sum(1)).exp()
    ppl = per_seq.mean()
    return ppl, ppl.log2()


@learner("perplexity", "ppl_uses_package", "masked_cross_entropy (rnncourse/masking.py) was called")
def perplexity_uses_package(logits, targets, mask):
    from rnncourse.masking import masked_cross_entropy
    mean = masked_cross_entropy(logits, targets, mask)
    return mean.exp(), mean / math.log(2)


@learner("perplexity", "ppl_cpu_counts", "mixes devices")
def perplexity_cpu_counts(logits, targets, mask):
    V = logits.shape[-1]
    nll = torch.nn.functional.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                            reduction="none").view(targets.shape)
    weights = torch.zeros(targets.shape, dtype=logits.dtype)  # on the CPU, whatever the inputs' device
    weights = weights + mask
    mean = (nll * weights).sum() / weights.sum()
    return mean.exp(), mean / math.log(2)


# ---------------------------------------------------------------- temperature_probs


def temperature_probs_right(logits, tau):
    if tau == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / tau, dim=-1)


def temperature_probs_limit(logits, tau):
    # tau = 0 as a mask of the maxima; exp of shifted logits normalised by hand
    if tau == 0:
        return (logits == logits.max(-1, keepdim=True).values).to(logits.dtype)
    z = (logits - logits.max(-1, keepdim=True).values) / tau
    return z.exp() / z.exp().sum(-1, keepdim=True)


@learner("temperature_probs", "temp_times_tau", "multiplied by tau")
def temperature_probs_times_tau(logits, tau):
    if tau == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits * tau, dim=-1)


@learner("temperature_probs", "temp_after_softmax", "after the softmax")
def temperature_probs_after_softmax(logits, tau):
    if tau == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits, dim=-1) / tau


@learner("temperature_probs", "temp_no_zero", "NaN at tau = 0")
def temperature_probs_no_zero(logits, tau):
    return torch.softmax(logits / tau, dim=-1)


@learner("temperature_probs", "temp_wrong_axis", "wrong axis")
def temperature_probs_wrong_axis(logits, tau):
    if tau == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).to(logits.dtype)
    return torch.softmax(logits / tau, dim=0)


# ---------------------------------------------------------------- sample_next


def sample_next_multinomial(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits / tau, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


def sample_next_inverse_cdf(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    cdf = torch.softmax(logits / tau, dim=-1).cumsum(-1)
    u = torch.rand(logits.shape[0], 1, generator=generator, dtype=logits.dtype)
    return torch.searchsorted(cdf, u).squeeze(-1).clamp_max(logits.shape[-1] - 1)


def sample_next_gumbel(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    u = torch.rand(logits.shape, generator=generator, dtype=logits.dtype).clamp_min(1e-12)
    return (logits / tau - torch.log(-torch.log(u))).argmax(-1)


@learner("sample_next", "sample_times_tau", "multiplied by tau")
def sample_next_times_tau(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits * tau, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@learner("sample_next", "sample_after_softmax", "applied after the softmax")
def sample_next_after_softmax(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits, dim=-1) / tau
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@learner("sample_next", "sample_wrong_axis", "wrong axis")
def sample_next_wrong_axis(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    e = torch.exp(logits / tau)
    return torch.multinomial(e / e.sum(0), 1, generator=generator).squeeze(-1)


@learner("sample_next", "sample_argmax", "every draw is the argmax")
def sample_next_argmax(logits, tau, generator):
    return logits.argmax(-1)


@learner("sample_next", "sample_global_rng", "generators seeded alike gave different draws")
def sample_next_global_rng(logits, tau, generator):
    if tau == 0:
        return logits.argmax(-1)
    return torch.multinomial(torch.softmax(logits / tau, dim=-1), 1).squeeze(-1)


# ---------------------------------------------------------------- train_stream


def _train_stream(model, optimizer, rows, T, state=None, *, detach=True, reset=False, shift=1):
    losses = []
    L = rows.shape[1]
    for i in range(0, L - 1, T):
        n = min(T, L - 1 - i)
        x, y = rows[:, i:i + n], rows[:, i + shift:i + shift + n]
        logits, state = model(x, None if reset else state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        if detach:
            state = tuple(s.detach() for s in state) if isinstance(state, tuple) else state.detach()
    return losses, state


def train_stream_right(model, optimizer, rows, T, state=None):
    return _train_stream(model, optimizer, rows, T, state)


def train_stream_other_style(model, optimizer, rows, T, state=None):
    # chunks first (a list of slices), losses as tensors, detach with a helper
    def cut(s):
        return tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach()
    starts = list(range(0, rows.shape[1] - 1, T))
    losses = []
    for i in starts:
        x = rows[:, i:min(i + T, rows.shape[1] - 1)]
        y = rows[:, i + 1:i + 1 + x.shape[1]]
        logits, state = model(x, state)
        loss = torch.nn.functional.cross_entropy(logits.transpose(1, 2), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        state = cut(state)
        losses.append(loss.detach())
    return losses, state


@learner("train_stream", "tbptt_reset", "reset (None or zeros) at every chunk")
def train_stream_reset(model, optimizer, rows, T, state=None):
    return _train_stream(model, optimizer, rows, T, state, reset=True)


@learner("train_stream", "tbptt_not_detached", "carried but not detached")
def train_stream_not_detached(model, optimizer, rows, T, state=None):
    losses = []
    L = rows.shape[1]
    for i in range(0, L - 1, T):
        n = min(T, L - 1 - i)
        logits, state = model(rows[:, i:i + n], state)  # the state keeps its graph
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 rows[:, i + 1:i + 1 + n].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses, state


@learner("train_stream", "tbptt_not_shifted", "targets are not shifted")
def train_stream_not_shifted(model, optimizer, rows, T, state=None):
    return _train_stream(model, optimizer, rows, T, state, shift=0)


@learner("train_stream", "tbptt_retain_graph", "carried but not detached")
def train_stream_retain_graph(model, optimizer, rows, T, state=None):
    # keeps the graph alive instead of detaching: the check refuses the attached state
    losses = []
    L = rows.shape[1]
    for i in range(0, L - 1, T):
        n = min(T, L - 1 - i)
        logits, state = model(rows[:, i:i + n], state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]),
                                                 rows[:, i + 1:i + 1 + n].reshape(-1))
        optimizer.zero_grad()
        loss.backward(retain_graph=True)
        optimizer.step()
        losses.append(loss.item())
    return losses, state


@learner("train_stream", "tbptt_uses_package", "tbptt_chunks (rnncourse/data/stream.py) was called")
def train_stream_uses_package(model, optimizer, rows, T, state=None):
    from rnncourse.data.stream import detach_state, tbptt_chunks
    losses = []
    for x, y in tbptt_chunks(rows, T):
        logits, state = model(x, state)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
        state = detach_state(state)
    return losses, state
