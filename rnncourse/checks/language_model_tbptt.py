r"""Check for lesson 08's training step: truncated BPTT over a long stream.

The learner writes ``train_stream(model, optimizer, rows, T, state=None) ->
(losses, state)``: walk the rows (B, L) of a token stream in chunks of T steps
(inputs ``rows[:, i:i+n]``, targets ``rows[:, i+1:i+1+n]``, n = min(T, L-1-i),
the last chunk possibly shorter), and for each chunk: run
``logits, state = model(inputs, state)`` with the state the previous chunk ended
in, take the mean cross-entropy of the chunk, back-propagate, step the optimizer,
and carry the state on **detached**. Return the list of the chunks' losses (floats)
and the final state.

The check hands over a small model of its own (an embedding, a ``torch.nn`` LSTM
or GRU, a linear layer) whose forward records every incoming state, and an SGD
optimizer whose ``step`` records every gradient. It then compares, against the
same loop run by the check:

* the state each chunk starts from: carried (its values), and **detached** (no
  ``grad_fn``). A state that is still attached is refused as soon as the second
  chunk's forward receives it, so an undetached loop fails at once instead of
  running with a graph that grows with the stream;
* the loss of every chunk and the gradient of every parameter at every step, so
  no gradient crosses a chunk boundary;
* with a learning rate of 0 (the weights never change), the final state against
  one forward pass over the whole stream: the carried values are the same.

Named mistakes: the state reset every chunk, the targets not shifted, the loss
summed instead of averaged, the last shorter chunk dropped.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, close, make_case, passed, tolerance,
    validate_scalar,
)
# Imported here so that a learner's `from rnncourse.data.stream import tbptt_chunks` inside the
# check is a lookup, and the refusal names the function called rather than the module's import.
import rnncourse.data.stream  # noqa: F401
from rnncourse.checks.devprobe import assert_not_stray, probe_devices
from rnncourse.guard import REFERENCE_MODELS, handed_to_learner

# Added to call_learner's package-wide block, which covers rnncourse.data.stream (tbptt_chunks, detach_state).
BLOCKS = (REFERENCE_MODELS,)
_ATTACHED = ("the state passed into chunk {k} still has a grad_fn: it was carried but not detached, "
             "so every backward would run back through all the chunks before it and the graph would "
             "grow with the stream (after an optimizer step, backward through the old graph fails). "
             "Carry state.detach() (for an LSTM, each of h and c).")


class UndetachedState(RuntimeError):
    """Raised by the check's model when a chunk starts from a state still in a graph."""


def _tensors(state) -> list:
    if state is None:
        return []
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, (tuple, list)):
        return [t for s in state for t in _tensors(s)]
    return [state]  # something else: the comparison reports it


class StreamLM(torch.nn.Module):
    """Embedding -> torch.nn.<kind> (batch-first) -> Linear, ``forward(x (B, n), state=None)
    -> (logits (B, n, V), state)``, recording the inputs and the incoming state of every call."""

    def __init__(self, kind: str, V: int, E: int, H: int):
        super().__init__()
        self.embed = torch.nn.Embedding(V, E)
        self.rnn = getattr(torch.nn, kind)(E, H, batch_first=True)
        self.head = torch.nn.Linear(H, V)
        self.calls: list = []  # (inputs, incoming state's tensors, detached copies)

    def forward(self, x: torch.Tensor, state=None):
        incoming = _tensors(state)
        k = len(self.calls) + 1
        self.calls.append((x.detach().clone(), [t.detach().clone() if isinstance(t, torch.Tensor) else t
                                                for t in incoming]))
        if any(isinstance(t, torch.Tensor) and t.grad_fn is not None for t in incoming):
            raise UndetachedState(_ATTACHED.format(k=k))
        out, state = self.rnn(self.embed(x), state)  # (B, n, H)
        return self.head(out), state  # (B, n, V)

    # The learner's loop calls it: it is the check's own code (torch.nn's LSTM/GRU inside),
    # not an answer, so it runs with nothing blocked.
    forward = handed_to_learner(forward)


class RecordingSGD(torch.optim.SGD):
    """Plain SGD that keeps a copy of every gradient it steps with."""

    def __init__(self, params, lr: float):
        super().__init__(params, lr=lr)
        self.seen: list = []

    def step(self, closure=None):
        self.seen.append([None if p.grad is None else p.grad.detach().clone()
                          for g in self.param_groups for p in g["params"]])
        return super().step(closure)

    step = handed_to_learner(step)  # called by the learner's loop: the check's own code


def _detach(state):
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()


def reference_loop(model, optimizer, rows, T, state=None, *, reset=False, shift=1,
                   reduction="mean", keep_tail=True):
    """The lesson's loop (defaults), or one of its wrong variants. Returns (losses, state)."""
    L, V = rows.shape[1], model.head.out_features
    losses = []
    for i in range(0, L - 1, T):
        n = min(T, L - 1 - i)
        if n < T and not keep_tail:
            break
        x, y = rows[:, i:i + n], rows[:, i + shift:i + shift + n]  # (B, n) each
        logits, state = model(x, None if reset else state)  # (B, n, V)
        loss = F.cross_entropy(logits.reshape(-1, V), y.reshape(-1), reduction=reduction)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        state = _detach(state)
    return losses, state


VARIANTS = {
    "the state is reset (None or zeros) at every chunk instead of carried": dict(reset=True),
    "the targets are not shifted (targets == inputs); each target is the next token": dict(shift=0),
    "the loss is summed over the chunk instead of averaged (cross_entropy's default is the mean)":
        dict(reduction="sum"),
    "the last, shorter chunk is dropped; the lesson trains on it too": dict(keep_tail=False),
}


def _args(gen, s, setting):
    kind, lr = setting
    B, T, V = s["B"], s["T"], s["V"]
    k = int(torch.randint(2, 4, (1,), generator=gen))
    L = k * T + 1 + int(torch.randint(1, T, (1,), generator=gen))  # a shorter last chunk
    return Drawn({"rows": torch.randint(0, V, (B, L), generator=gen), "T": T},
                 sizes={"L": L, "kind": kind, "lr": lr},
                 context={"kind": kind, "lr": lr, "init": int(torch.randint(0, 2 ** 31, (1,), generator=gen))})


def _fixed():
    gen = torch.Generator().manual_seed(3)
    # sizes of 1: one row, chunks of one step (a GRU's state is a tensor, an LSTM's a pair)
    return (Drawn({"rows": torch.randint(0, 5, (1, 5), generator=gen), "T": 1},
                  sizes={"B": 1, "T": 1, "V": 5, "L": 5, "kind": "GRU", "lr": 0.0},
                  context={"kind": "GRU", "lr": 0.0, "init": 1}),)


PLAN = Plan("BTV", _args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13), low=2, high=9,
            variants=(("LSTM", 0.0), ("GRU", 0.5), ("LSTM", 0.5)), integer=False, fixed=_fixed())
E, H = 4, 6  # the check's model: small, and E != H so a mix-up shows in a shape


def _setup(case):
    """A fresh model and optimizer for the case, in its dtype on its device."""
    kind, lr = case.context["kind"], case.context["lr"]
    V = case.sizes["V"]
    torch.manual_seed(case.context["init"])
    model = StreamLM(kind, V, E, H).to(case.device, case.dtype)
    return model, RecordingSGD(model.parameters(), lr=lr)


def _run(case, variant: dict | None):
    model, opt = _setup(case)
    losses, state = reference_loop(model, opt, case.args["rows"], case.args["T"], **(variant or {}))
    return model, opt, losses, state


def _same_run(case, model, opt, losses, state, ref) -> bool:
    atol, rtol = tolerance(case)
    r_model, r_opt, r_losses, r_state = ref
    return (len(losses) == len(r_losses)
            and all(abs(a - b) <= atol + rtol * abs(b) for a, b in zip(losses, r_losses))
            and len(opt.seen) == len(r_opt.seen)
            and all(close(g, w, atol, rtol) for g, w in zip(opt.seen, r_opt.seen)))


def _state_tensors(out_state, case, where):
    got = _tensors(out_state)
    if not got or not all(isinstance(t, torch.Tensor) for t in got):
        raise CheckFailed(f"{where}: the final state should be the model's state after the last chunk "
                          f"(a tensor, or (h, c) for an LSTM), got {type(out_state).__name__}.")
    return got


def check_train_stream(train_stream, hidden: bool = False) -> None:
    """train_stream(model, optimizer, rows (B, L), T, state=None) -> (losses, state): truncated
    BPTT over the stream, the state carried from chunk to chunk and detached."""
    cases = build_cases(hidden, PLAN)
    for case in cases:
        model, opt = _setup(case)
        learner_case = make_case(case.index, case.total, case.seed, case.dtype, case.device, case.sizes,
                                 {"model": model, "optimizer": opt, **case.args}, case.context)
        where = f"train_stream, {case.label}"
        out = call_learner(train_stream, learner_case, "train_stream", blocks=BLOCKS)
        if not isinstance(out, (tuple, list)) or len(out) != 2:
            raise CheckFailed(f"{where}: expected a pair (losses, state), got {type(out).__name__}. "
                              "End with `return losses, state`.")
        losses, state = out
        if not isinstance(losses, (list, tuple)):
            raise CheckFailed(f"{where}: losses should be a list with one number per chunk, got "
                              f"{type(losses).__name__}.")
        losses = [validate_scalar(v, case, "train_stream", f"the loss of chunk {i + 1}")
                  for i, v in enumerate(losses)]
        ref = _run(case, None)
        if _same_run(case, model, opt, losses, state, ref):
            _compare_states(case, model, ref[0], state, ref[3], where)
            continue
        for phrase, variant in VARIANTS.items():
            if _same_run(case, model, opt, losses, state, _run(case, variant)):
                raise CheckFailed(f"{where}: the losses and gradients match what you get if {phrase}.")
        _explain(case, model, opt, losses, ref, where)
    _probe_devices(train_stream, cases)
    passed("train_stream", cases, hidden)


def _probe_devices(train_stream, cases) -> None:
    """A device mistake on a grader without a GPU (rnncourse/checks/devprobe.py): the
    first CPU case again, with every tensor made without device= (an initial state of
    zeros, say) sent to torch's 'meta' device. Meeting the model's tensors, or coming
    back as the final state, is the mistake a GPU would show. The training itself runs
    on real values, so code that reads a stray tensor's values is inconclusive, not wrong."""
    case = next((c for c in cases if c.device.type == "cpu"), None)
    if case is None:
        return
    model, opt = _setup(case)
    probe = make_case(case.index, case.total, case.seed, case.dtype, case.device, case.sizes,
                      {"model": model, "optimizer": opt, **case.args}, case.context)
    out = probe_devices(train_stream, probe, "train_stream", blocks=BLOCKS)
    if isinstance(out, (tuple, list)) and len(out) == 2:
        state = tuple(_tensors(out[1]))
        assert_not_stray(state, probe, "train_stream", ("the final state", "the final cell state"))


def _compare_states(case, model, ref_model, state, ref_state, where):
    """Every chunk started from the carried state; the final state is the carried one, and
    with lr = 0 it equals one forward pass over the whole stream."""
    atol, rtol = tolerance(case)
    for k, ((_, got), (_, want)) in enumerate(zip(model.calls, ref_model.calls), start=1):
        if k == 1 and not want and all(isinstance(t, torch.Tensor) and not t.any() for t in got):
            continue  # an explicit zero first state is what state=None means
        if not close(got, want, atol, rtol):
            raise CheckFailed(f"{where}: chunk {k} did not start from the state chunk {k - 1} ended in.")
    got = _state_tensors(state, case, where)
    if not close([t.detach() for t in got], _tensors(ref_state), atol, rtol):
        raise CheckFailed(f"{where}: the returned state is not the state after the last chunk.")
    if case.context["lr"] == 0:
        rows = case.args["rows"]
        with torch.no_grad():
            _, whole = ref_model.rnn(ref_model.embed(rows[:, :-1]))  # the whole stream at once
        if not close([t.detach() for t in got], _tensors(whole), atol, rtol):
            raise CheckFailed(f"{where}: with lr = 0 the final state should equal one pass over the "
                              "whole stream; it does not.")


def _explain(case, model, opt, losses, ref, where):
    r_model, r_opt, r_losses, _ = ref
    n = len(r_losses)
    if len(model.calls) != n:
        raise CheckFailed(f"{where}: expected {n} chunks (one forward each) for rows of length "
                          f"L={case.sizes['L']} and T={case.args['T']}, got {len(model.calls)} forward calls.")
    for k, ((x, s), (rx, rs)) in enumerate(zip(model.calls, r_model.calls), start=1):
        if x.shape != rx.shape or not torch.equal(x, rx):
            raise CheckFailed(f"{where}: the inputs of chunk {k} are wrong: chunk k starts at i = (k-1)*T "
                              "and holds rows[:, i:i+n], n = min(T, L - 1 - i).")
        if k > 1 and (not s or all(float(t.abs().max()) == 0 for t in s)):
            raise CheckFailed(f"{where}: chunk {k} started from a fresh state: carry the state from "
                              "one chunk to the next.")
    if len(losses) != n:
        raise CheckFailed(f"{where}: expected one loss per chunk ({n}), got {len(losses)}.")
    if len(opt.seen) != n:
        raise CheckFailed(f"{where}: expected one optimizer step per chunk ({n}), got {len(opt.seen)}.")
    atol, rtol = tolerance(case)
    for k, (a, b) in enumerate(zip(losses, r_losses), start=1):
        if abs(a - b) > atol + rtol * abs(b):
            raise CheckFailed(f"{where}: the loss of chunk {k} is off by {abs(a - b):.3g}: the mean "
                              "cross-entropy of the chunk's logits (B*n, V) against its targets.")
    raise CheckFailed(f"{where}: the gradients at some step differ from truncated BPTT's: zero the "
                      "gradients before each backward, and back-propagate only the chunk's loss.")
