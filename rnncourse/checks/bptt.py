"""Checks for lesson 02 (backpropagation through time): rnn_backward, batchify,
tbptt_batches.

rnn_backward(x, h0, W_ih, W_hh, b_ih, b_hh, dh) returns the gradients in the
order of its arguments, (dx, dh0, dW_ih, dW_hh, db_ih, db_hh), for
h_t = tanh(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh) with x (B, T, I) batch-first
and dh (B, T, H) the gradient of the loss with respect to each h_t directly.
The reference is autograd through ``rnncourse.functional.rnn_cell`` (float64); the wrong variants
come from a hand-written backward with one mistake switched on at a time.

batchify(tokens, batch_size) cuts a stream (N,) into batch_size contiguous rows
(B, N // B), dropping the tail. tbptt_batches(streams, seq_len) walks the rows in
chunks of seq_len: inputs streams[:, i:i+n], targets streams[:, i+1:i+1+n], with
n = min(seq_len, L - 1 - i), so the last chunk may be shorter and is kept. In
messages T is the chunk length (seq_len) and L a stream's length.
"""
from __future__ import annotations

import torch

from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, compare_exact, on_cpu64, passed, randn,
    validate, validate_int, validate_items,
)
from rnncourse.checks.rnn import reference_forward
from rnncourse.guard import AUTOGRAD, FROM_SCRATCH

GRADS = ("dx", "dh0", "dW_ih", "dW_hh", "db_ih", "db_hh")
_BACKWARD_HINT = ("With z_t the pre-activation: dz_t = (dh_t + dz_{t+1} @ W_hh) * (1 - h_t**2), "
                  "dx_t = dz_t @ W_ih, and the weight gradients sum dz_t.T @ (input of step t) "
                  "over every step t and every sequence in the batch.")


# ----------------------------------------------------------------------------
# cases and the autograd reference

def _backward_args(gen: torch.Generator, s: dict) -> Drawn:
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    # Moderate scales keep tanh out of saturation (where 1 - h^2 ~ 0 would make
    # several wrong variants look alike); random normal matrices are non-symmetric.
    return Drawn({
        "x": randn(gen, B, T, I), "h0": randn(gen, B, H, scale=0.8).tanh(),
        "W_ih": randn(gen, H, I, scale=0.5), "W_hh": randn(gen, H, H, scale=0.5),
        "b_ih": randn(gen, H, scale=0.5), "b_hh": randn(gen, H, scale=0.5),
        "dh": randn(gen, B, T, H),
    })


# Sizes of 1 (one sequence of one step, one feature, one unit) and a meta-device run; no
# gradient case: the result is itself a gradient, and autograd is off while it runs.
BACKWARD_PLAN = Plan("BTIH", _backward_args, ones="BTIH", meta=True)
_WEIGHTS = ("x", "h0", "W_ih", "W_hh", "b_ih", "b_hh")


def reference_backward(a: dict) -> tuple:
    """The six gradients by autograd through rnncourse.functional's cell (float64, CPU)."""
    leaves = [a[k].clone().requires_grad_() for k in _WEIGHTS]
    with torch.enable_grad():
        outputs, _ = reference_forward(*leaves)  # (B, T, H)
        # <outputs, dh> has gradient dh with respect to every h_t: the exercise's dh
        return torch.autograd.grad((outputs * a["dh"]).sum(), leaves)


# ----------------------------------------------------------------------------
# a hand-written backward with switchable mistakes, for naming wrong answers

def _wrong_backward(a: dict, no_tanh_grad=False, tanh_grad_of_prev=False, no_carry=False,
                    carry_skips_tanh=False, carry_W_hh_T=False, last_only=False,
                    first_only=False, pair_h_t=False, weights_T=False, mean_time=False,
                    mean_batch=False) -> dict:
    x, h0, W_ih, W_hh, dh = a["x"], a["h0"], a["W_ih"], a["W_hh"], a["dh"]
    T = x.shape[1]
    hs = [h0, *reference_forward(*(a[k] for k in _WEIGHTS))[0].unbind(1)]  # h_0 ... h_T
    dzs, delta_1 = [None] * T, None
    carry = torch.zeros_like(h0)  # gradient reaching h_t from step t+1
    for t in reversed(range(T)):
        delta = dh[:, t] + carry  # (B, H): dL/dh_{t+1} in the lesson's 1-based notation
        h = hs[t] if tanh_grad_of_prev else hs[t + 1]
        dz = delta if no_tanh_grad else delta * (1 - h ** 2)
        dzs[t], delta_1 = dz, delta
        back = delta if carry_skips_tanh else dz
        carry = torch.zeros_like(h0) if no_carry else back @ (W_hh.T if carry_W_hh_T else W_hh)
    steps = [T - 1] if last_only else [0] if first_only else range(T)
    B = x.shape[0]

    def total(terms):
        s = sum(terms)
        s = s / T if mean_time else s
        return s / B if mean_batch else s

    inputs = [hs[t + 1] if pair_h_t else hs[t] for t in range(T)]
    dW_ih = total(dzs[t].T @ x[:, t] for t in steps)  # (H, I)
    dW_hh = total(dzs[t].T @ inputs[t] for t in steps)  # (H, H)
    db = total(dzs[t].sum(0) for t in steps)  # (H,)
    if weights_T:  # square, so only the values can tell (a transposed dW_ih has the wrong shape)
        dW_hh = dW_hh.T
    dx = torch.stack([dz @ W_ih for dz in dzs], dim=1)  # (B, T, I)
    dh0 = dzs[0] @ (W_hh.T if carry_W_hh_T else W_hh)
    return dict(zip(GRADS, (dx, dh0, dW_ih, dW_hh, db, db)), delta_1=delta_1, dz_1=dzs[0])


_BACKWARD_VARIANTS = {
    "the tanh derivative (1 - h_t**2) is left out": dict(no_tanh_grad=True),
    "the tanh derivative uses the previous state (1 - h_{t-1}**2) instead of h_t":
        dict(tanh_grad_of_prev=True),
    "the gradient is not passed back to h_{t-1}: each step sees only its own dh_t":
        dict(no_carry=True),
    "the gradient passed back to h_{t-1} skips the tanh derivative (delta @ W_hh instead of dz @ W_hh)":
        dict(carry_skips_tanh=True),
    "the gradient is passed back through W_hh.T instead of W_hh (dz @ W_hh.T)": dict(carry_W_hh_T=True),
    "the weight gradients keep only the last step's term instead of summing over all steps":
        dict(last_only=True),
    "the weight gradients keep only the first step's term instead of summing over all steps":
        dict(first_only=True),
    "dW_hh pairs dz_t with h_t instead of the previous state h_{t-1} (off by one)": dict(pair_h_t=True),
    "dW_hh is transposed (h_prev.T @ dz instead of dz.T @ h_prev)": dict(weights_T=True),
    "the weight gradients are averaged over time instead of summed": dict(mean_time=True),
    "the weight gradients are averaged over the batch instead of summed": dict(mean_batch=True),
}


def _backward_variants(a: dict, ref: dict, name: str, wrong: dict) -> dict:
    v = {phrase: grads[name] for phrase, grads in wrong.items()}
    zero = torch.zeros_like(ref[name])
    v[f"{name} is all zeros (never computed or never accumulated)"] = zero
    if name == "dh0":
        right = _wrong_backward(a)
        v["dh0 is the gradient of h_1, not passed back through step 1 to h_0"] = right["delta_1"]
        v["dh0 is dz_1, not multiplied by W_hh"] = right["dz_1"]
    if name in ("db_ih", "db_hh"):
        v[f"{name} sums dh instead of dz (the tanh derivative is missing)"] = a["dh"].sum((0, 1))
    return v


_GRAD_SHAPES = {"dx": ("B", "T", "I"), "dh0": ("B", "H"), "dW_ih": ("H", "I"),
                "dW_hh": ("H", "H"), "db_ih": ("H",), "db_hh": ("H",)}


def _shape_hints(name: str, s: dict) -> dict:
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    hints = {
        "dx": {(B, T, H): "that is the gradient of the pre-activations; dx_t = dz_t @ W_ih",
               (T, B, I): "time-first; the course is batch-first"},
        "dh0": {(B, T, H): "that is every step; dh0 is the gradient of the initial state only",
                (1, B, H): "drop the leading layers axis"},
        "db_ih": {(B, H): "sum over the batch too", (T, H): "sum over time too",
                  (B, T, H): "sum over the batch and time"},
    }
    hints["db_hh"] = hints["db_ih"]
    return hints.get(name, {})


def check_rnn_backward(rnn_backward, hidden: bool = False) -> None:
    """rnn_backward(x, h0, W_ih, W_hh, b_ih, b_hh, dh) -> (dx, dh0, dW_ih, dW_hh, db_ih, db_hh),
    derived by hand (autograd is switched off while it runs)."""
    cases = build_cases(hidden, BACKWARD_PLAN)
    for case in cases:
        result = call_learner(rnn_backward, case, "rnn_backward", hint_on_error=_BACKWARD_HINT,
                              blocks=(*FROM_SCRATCH, AUTOGRAD))
        grads = dict(zip(GRADS, validate_items(result, case, "rnn_backward", GRADS,
                                               what="a tuple of six gradients")))
        for name in GRADS:  # the lesson promises the inputs' dtype and device
            validate(grads[name], case, "rnn_backward", name, _GRAD_SHAPES[name], same_dtype=True,
                     shape_hints=_shape_hints(name, case.sizes))
        a = on_cpu64(case)
        ref = dict(zip(GRADS, reference_backward(a)))
        wrong = {phrase: _wrong_backward(a, **kw) for phrase, kw in _BACKWARD_VARIANTS.items()}
        for name in GRADS:
            compare(grads[name], ref[name], case, "rnn_backward", name,
                    _backward_variants(a, ref, name, wrong), hint=_BACKWARD_HINT)
    passed("rnn_backward", cases, hidden)


# ----------------------------------------------------------------------------
# stateful batching of a token stream: integer cases, compared exactly

_BATCH_FIRST = "transposed: time-first; the course is batch-first, one row per stream"


def _batchify_args(gen: torch.Generator, s: dict, shape: tuple) -> Drawn:
    # Streams longer than the batch is wide, and shorter (L < B); distinct token ids, so
    # every misplaced token shows; a ragged tail in every other case (none with B = 1).
    ragged, long = shape
    B, L = (min(s["B"], s["L"]), max(s["B"], s["L"])) if long else (max(s["B"], s["L"]), min(s["B"], s["L"]))
    if s["B"] == 1:  # the case with a batch of one stream
        B, L = 1, s["L"]
    tail = int(torch.randint(1, B, (1,), generator=gen)) if ragged and B > 1 else 0
    N = B * L + tail
    return Drawn({"tokens": torch.randperm(N, generator=gen) + 100, "batch_size": B},
                 sizes={"B": B, "L": L, "N": N})


# (ragged tail, streams longer than the batch width) in turn; a batch of one stream (B = 1);
# a meta-device run.
BATCHIFY_PLAN = Plan("BL", _batchify_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13),
                     integer=True, low=3, high=12, ones="B", meta=True,
                     variants=((True, True), (False, False), (True, False), (False, True)))


def _batchify_variants(tokens: torch.Tensor, B: int) -> dict:
    L = tokens.numel() // B
    return {
        "the tokens are dealt out in turn (interleaved: row b holds tokens b, b+B, b+2B, ...); "
        "each row must be one unbroken stretch of the stream": tokens[: B * L].view(L, B).T,
        "the ragged tail is dropped from the start of the stream instead of its end":
            tokens[tokens.numel() - B * L:].view(B, L),
    }


def check_batchify(batchify, hidden: bool = False) -> None:
    """batchify(tokens (N,), batch_size) -> (B, N // B): row b is tokens[b*L:(b+1)*L],
    L = N // B, and the last N mod B tokens are dropped."""
    cases = build_cases(hidden, BATCHIFY_PLAN)
    for case in cases:
        out = call_learner(batchify, case, "batchify")
        B, L = case.sizes["B"], case.sizes["L"]
        tokens = case.args["tokens"].cpu()
        tail = tokens.numel() - B * L
        hints = {(L, B): _BATCH_FIRST,
                 (B * L,): "that is the stream with its tail dropped; reshape it into B rows"}
        if tail:
            hints[(B, L + 1)] = (f"one column too many: the {tail} tokens left over are kept; "
                                 "the lesson drops them")
        validate_int(out, case, "batchify", "streams", ("B", "L"), hints, noun="tokens",
                     transposed_hint=_BATCH_FIRST)
        compare_exact(out, tokens[: B * L].view(B, L), case, "batchify", "streams",
                      _batchify_variants(tokens, B),
                      otherwise=f"Row b must hold tokens[b*L:(b+1)*L] with L = N // B = {L}.")
    passed("batchify", cases, hidden)


def reference_chunks(streams: torch.Tensor, T: int, step_change: int = 0,
                     shift: int = 1, keep_tail: bool = True, swap: bool = False,
                     stop: int = 1) -> list:
    """The lesson's chunks of length T (the learner's seq_len) with the defaults,
    or a wrong variant of them."""
    L = streams.shape[1]
    if T + step_change < 1:  # that mistake cannot happen at seq_len = 1
        return None
    chunks = []
    for i in range(0, L - stop, T + step_change):
        n = min(T, L - 1 - i)
        if n < T and not keep_tail:
            break
        inputs, targets = streams[:, i:i + n], streams[:, i + shift:i + shift + n]
        chunks.append((targets, inputs) if swap else (inputs, targets))
    return chunks


_CHUNK_VARIANTS = {
    "the targets are not shifted (targets == inputs); each target is the token after its input":
        dict(shift=0),
    "inputs and targets are swapped: the targets are shifted the wrong way (the token before "
    "each input)": dict(swap=True),
    "the last, shorter chunk is dropped; the lesson keeps it": dict(keep_tail=False),
    "each chunk starts seq_len + 1 tokens after the previous one, so one token between chunks "
    "is never an input": dict(step_change=+1),
    "each chunk starts seq_len - 1 tokens after the previous one, so chunks overlap by a token":
        dict(step_change=-1),
    "the loop runs over all L positions instead of L - 1, adding an empty chunk at the end "
    "(when the row splits exactly)": dict(stop=0),
}


def _same_chunks(got, want: list) -> bool:
    return len(got) == len(want) and all(
        isinstance(p, (tuple, list)) and len(p) == 2
        and all(isinstance(t, torch.Tensor) and t.shape == w.shape and torch.equal(t.cpu(), w)
                for t, w in zip(p, q)) for p, q in zip(got, want))


def _tbptt_args(gen: torch.Generator, s: dict, ragged: bool) -> Drawn:
    B, T = s["B"], s["T"]
    k = int(torch.randint(2, 5, (1,), generator=gen))
    # Half the cases: a shorter last chunk; the others split exactly into chunks.
    L = k * T + 1 + (int(torch.randint(1, T, (1,), generator=gen)) if ragged and T > 1 else 0)
    return Drawn({"streams": (torch.randperm(B * L, generator=gen) + 100).view(B, L), "seq_len": T},
                 sizes={"L": L})


# one stream of chunks of one step (B = T = 1) too; a meta-device run
TBPTT_PLAN = Plan("BT", _tbptt_args, visible_seeds=(0, 1), integer=True, variants=(True, False),
                  ones="BT", meta=True)


def _explain_chunks(got: list, want: list, case, T: int) -> None:
    """Where a list of chunks that matches no known variant goes wrong."""
    where = f"tbptt_batches, {case.label}"
    B, L = case.sizes["B"], case.sizes["L"]
    if len(got) != len(want):
        raise CheckFailed(f"{where}: expected {len(want)} chunks for rows of length L={L} and "
                          f"seq_len = T = {T}, got {len(got)}. Chunks start at 0, seq_len, 2*seq_len, "
                          "... while at least one target is left; the last may be shorter.")
    for k, (pair, (x, y)) in enumerate(zip(got, want)):
        x_k, y_k = validate_items(pair, case, "tbptt_batches", ("inputs", "targets"),
                                  what=f"chunk {k} to be a pair")
        for name, t, w in (("inputs", x_k, x), ("targets", y_k, y)):
            hint = {(B, T): "the last chunk is shorter: don't pad it"} if w.shape[1] < T else {}
            validate_int(t, case, "tbptt_batches", f"chunk {k} {name}", tuple(w.shape), hint,
                         noun="tokens", transposed_hint=_BATCH_FIRST)
            compare_exact(t, w, case, "tbptt_batches", f"chunk {k} {name}", otherwise=(
                f"With i = {k}*seq_len, inputs are streams[:, i:i+n] and targets streams[:, i+1:i+1+n]."))


def check_tbptt_batches(tbptt_batches, hidden: bool = False) -> None:
    """tbptt_batches(streams (B, L), seq_len) -> [(inputs, targets), ...]: chunk k starts at
    i = k * seq_len, n = min(seq_len, L - 1 - i), inputs streams[:, i:i+n], targets
    streams[:, i+1:i+1+n]."""
    cases = build_cases(hidden, TBPTT_PLAN)
    for case in cases:
        out = call_learner(tbptt_batches, case, "tbptt_batches")
        if out is None:
            raise CheckFailed(f"tbptt_batches, {case.label}: your function returned None. Did it forget "
                              "to `return chunks`?")
        if not isinstance(out, list):  # the exercise asks for a list (a generator empties after one pass)
            raise CheckFailed(f"tbptt_batches, {case.label}: expected a list of (inputs, targets) "
                              f"pairs, got a {type(out).__name__}. Collect the pairs in a list "
                              "(chunks.append((inputs, targets))) and return it.")
        got = out
        streams, T = case.args["streams"].cpu(), case.sizes["T"]
        want = reference_chunks(streams, T)
        variants = {p: reference_chunks(streams, T, **kw) for p, kw in _CHUNK_VARIANTS.items()}
        compare_exact(got, want, case, "tbptt_batches", "the chunks", variants, same=_same_chunks,
                      explain=lambda: _explain_chunks(got, want, case, T))
    passed("tbptt_batches", cases, hidden)
