"""Checks for lesson 02 (backpropagation through time): rnn_backward, batchify,
tbptt_batches.

rnn_backward(x, h0, W_xh, W_hh, b_xh, b_hh, dh) returns the gradients in the
order of its arguments, (dx, dh0, dW_xh, dW_hh, db_xh, db_hh), for
h_t = tanh(x_t W_xh^T + b_xh + h_{t-1} W_hh^T + b_hh) with x (B, T, I) batch-first
and dh (B, T, H) the gradient of the loss with respect to each h_t directly.
The reference is autograd through ``rnncourse.RNN`` (float64); the wrong variants
come from a hand-written backward with one mistake switched on at a time.

batchify(tokens, batch_size) cuts a stream (N,) into batch_size contiguous rows
(B, N // B), dropping the tail. tbptt_batches(streams, seq_len) walks the rows in
chunks of seq_len: inputs streams[:, i:i+n], targets streams[:, i+1:i+1+n], with
n = min(seq_len, L - 1 - i), so the last chunk may be shorter and is kept.
"""
from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode

from rnncourse.checks.core import (
    Case, CheckFailed, build_cases, call_learner, compare, distinct_sizes, make_case,
    on_cpu64, passed, randn, validate,
)
from rnncourse.guard import BlockedError

GRADS = ("dx", "dh0", "dW_xh", "dW_hh", "db_xh", "db_hh")
_BACKWARD_HINT = ("With z_t the pre-activation: dz_t = (dh_t + dz_{t+1} @ W_hh) * (1 - h_t**2), "
                  "dx_t = dz_t @ W_xh, and the weight gradients sum dz_t.T @ (input of step t) "
                  "over every step t and every sequence in the batch.")


# ----------------------------------------------------------------------------
# autograd is off while rnn_backward runs: the exercise is to derive it

class _AutogradBlocker(TorchFunctionMode):
    """Raise on ``.backward()``, ``torch.autograd.grad``/``backward`` and everything
    built on them (``torch.autograd.functional``, ``torch.func.grad``/``vjp``): each
    of these passes through a TorchFunctionMode before the engine runs."""

    def __init__(self, exercise: str):
        super().__init__()
        self.exercise = exercise

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func in (torch.Tensor.backward, torch.autograd.grad, torch.autograd.backward):
            raise BlockedError(
                f"autograd ({getattr(func, '__qualname__', func)}) was called inside your "
                f"'{self.exercise}'. This exercise is to derive the gradients by hand: compute "
                "them from the states with tensor operations, without .backward() or "
                "torch.autograd.grad (the check compares your result with autograd's).")
        return func(*args, **(kwargs or {}))


# ----------------------------------------------------------------------------
# cases and the autograd reference

def _backward_args(gen: torch.Generator, s: dict) -> dict:
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    # Moderate scales keep tanh out of saturation (where 1 - h^2 ~ 0 would make
    # several wrong variants look alike); random normal matrices are non-symmetric.
    return {
        "x": randn(gen, B, T, I), "h0": randn(gen, B, H, scale=0.8).tanh(),
        "W_xh": randn(gen, H, I, scale=0.5), "W_hh": randn(gen, H, H, scale=0.5),
        "b_xh": randn(gen, H, scale=0.5), "b_hh": randn(gen, H, scale=0.5),
        "dh": randn(gen, B, T, H),
    }


def reference_backward(a: dict) -> tuple:
    """The six gradients by autograd through rnncourse.RNN (float64, CPU)."""
    from rnncourse import RNN
    H, I = a["W_xh"].shape
    rnn = RNN(I, H, batch_first=True, dtype=torch.float64)
    rnn.load_state_dict({"weight_ih_l0": a["W_xh"], "weight_hh_l0": a["W_hh"],
                         "bias_ih_l0": a["b_xh"], "bias_hh_l0": a["b_hh"]})
    x = a["x"].clone().requires_grad_()
    h0 = a["h0"].clone().requires_grad_()
    with torch.enable_grad():
        outputs, _ = rnn(x, h0.unsqueeze(0))  # (B, T, H)
        # <outputs, dh> has gradient dh with respect to every h_t: the exercise's dh
        params = [x, h0, rnn.weight_ih_l0, rnn.weight_hh_l0, rnn.bias_ih_l0, rnn.bias_hh_l0]
        return torch.autograd.grad((outputs * a["dh"]).sum(), params)


# ----------------------------------------------------------------------------
# a hand-written backward with switchable mistakes, for naming wrong answers

def _wrong_backward(a: dict, no_tanh_grad=False, tanh_grad_of_prev=False, no_carry=False,
                    carry_skips_tanh=False, carry_W_hh_T=False, last_only=False,
                    first_only=False, pair_h_t=False, weights_T=False, mean_time=False,
                    mean_batch=False) -> dict:
    x, h0, W_xh, W_hh, dh = a["x"], a["h0"], a["W_xh"], a["W_hh"], a["dh"]
    T = x.shape[1]
    hs = [h0]
    for t in range(T):
        hs.append(torch.tanh(x[:, t] @ W_xh.T + a["b_xh"] + hs[-1] @ W_hh.T + a["b_hh"]))
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
    dW_xh = total(dzs[t].T @ x[:, t] for t in steps)  # (H, I)
    dW_hh = total(dzs[t].T @ inputs[t] for t in steps)  # (H, H)
    db = total(dzs[t].sum(0) for t in steps)  # (H,)
    if weights_T:  # square, so only the values can tell (a transposed dW_xh has the wrong shape)
        dW_hh = dW_hh.T
    dx = torch.stack([dz @ W_xh for dz in dzs], dim=1)  # (B, T, I)
    dh0 = dzs[0] @ (W_hh.T if carry_W_hh_T else W_hh)
    return dict(zip(GRADS, (dx, dh0, dW_xh, dW_hh, db, db)), delta_1=delta_1, dz_1=dzs[0])


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
    if name in ("db_xh", "db_hh"):
        v[f"{name} sums dh instead of dz (the tanh derivative is missing)"] = a["dh"].sum((0, 1))
    return v


def _as_grads(result, case: Case) -> dict:
    where = f"rnn_backward, {case.label}"
    if isinstance(result, dict):
        raise CheckFailed(f"{where}: expected a tuple of six gradients (dx, dh0, dW_xh, dW_hh, "
                          "db_xh, db_hh), got a dict. Return them as a tuple, in that order.")
    if not isinstance(result, (tuple, list)) or len(result) != 6:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}"
                                               if isinstance(result, (tuple, list)) else "")
        raise CheckFailed(f"{where}: expected a tuple of six gradients (dx, dh0, dW_xh, dW_hh, "
                          f"db_xh, db_hh), got {got}. End with `return dx, dh0, dW_xh, dW_hh, "
                          "db_xh, db_hh`.")
    return dict(zip(GRADS, result))


_GRAD_SHAPES = {"dx": ("B", "T", "I"), "dh0": ("B", "H"), "dW_xh": ("H", "I"),
                "dW_hh": ("H", "H"), "db_xh": ("H",), "db_hh": ("H",)}


def _shape_hints(name: str, s: dict) -> dict:
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    hints = {
        "dx": {(B, T, H): "that is the gradient of the pre-activations; dx_t = dz_t @ W_xh",
               (T, B, I): "time-first; the course is batch-first"},
        "dh0": {(B, T, H): "that is every step; dh0 is the gradient of the initial state only",
                (1, B, H): "drop the leading layers axis"},
        "db_xh": {(B, H): "sum over the batch too", (T, H): "sum over time too",
                  (B, T, H): "sum over the batch and time"},
    }
    hints["db_hh"] = hints["db_xh"]
    return hints.get(name, {})


def check_rnn_backward(rnn_backward, hidden: bool = False) -> None:
    """rnn_backward(x, h0, W_xh, W_hh, b_xh, b_hh, dh) -> (dx, dh0, dW_xh, dW_hh, db_xh, db_hh),
    derived by hand (autograd is switched off while it runs)."""
    cases = build_cases(hidden, "BTIH", _backward_args)
    for case in cases:
        with _AutogradBlocker("rnn_backward"):
            result = call_learner(rnn_backward, case, "rnn_backward", hint_on_error=_BACKWARD_HINT)
        grads = _as_grads(result, case)
        for name in GRADS:
            validate(grads[name], case, "rnn_backward", name, _GRAD_SHAPES[name],
                     shape_hints=_shape_hints(name, case.sizes))
        a = on_cpu64(case)
        ref = dict(zip(GRADS, reference_backward(a)))
        wrong = {phrase: _wrong_backward(a, **kw) for phrase, kw in _BACKWARD_VARIANTS.items()}
        for name in GRADS:
            compare(grads[name], ref[name], case, "rnn_backward", name,
                    _backward_variants(a, ref, name, wrong), hint=_BACKWARD_HINT)
    passed("rnn_backward", cases, hidden)


# ----------------------------------------------------------------------------
# stateful batching of a token stream

def _token_plan(hidden: bool) -> list:
    """(seed, dtype, device): token tensors are int64; the hidden plan adds a GPU case."""
    cpu = torch.device("cpu")
    if not hidden:
        return [(0, torch.int64, cpu), (1, torch.int64, cpu)]
    plan = [(s, torch.int64, cpu) for s in (10, 11, 12)]
    if torch.cuda.is_available():
        plan.append((13, torch.int64, torch.device("cuda")))
    return plan


def _validate_tokens(out, case: Case, exercise: str, what: str, shape: tuple,
                     hints: dict | None = None) -> torch.Tensor:
    """validate() for integer outputs: type, shape (given as ints), dtype, device."""
    where = f"{exercise}, {case.label}"
    if not isinstance(out, torch.Tensor):
        raise CheckFailed(f"{where}: {what} should be a torch.Tensor, got {type(out).__name__}.")
    got = tuple(out.shape)
    if got != tuple(shape):
        hint = (hints or {}).get(got)
        if hint is None and len(got) == 2 and got == tuple(shape)[::-1]:
            hint = "transposed: time-first; the course is batch-first, one row per stream"
        raise CheckFailed(f"{where}: expected {what} of shape {tuple(shape)}, got {got}"
                          + (f" ({hint})." if hint else "."))
    if out.dtype != case.dtype:
        raise CheckFailed(f"{where}: {what} has dtype {out.dtype}; keep the tokens' dtype "
                          f"({case.dtype}): token ids index an embedding, so they stay integers.")
    if out.device != case.device and not (out.device.type == case.device.type == "cuda"):
        raise CheckFailed(f"{where}: {what} is on device '{out.device}' but the tokens are on "
                          f"'{case.device}'. Index and reshape; don't move the tensor.")
    return out


def _batchify_args(gen: torch.Generator, s: dict) -> dict:
    # Distinct token ids, so every misplaced token shows; a ragged tail in odd seeds.
    tail = int(torch.randint(1, s["B"], (1,), generator=gen)) if s["seed"] % 2 == 0 else 0
    N = s["B"] * s["L"] + tail
    return {"tokens": torch.randperm(N, generator=gen) + 100, "batch_size": s["B"]}


def _batchify_variants(tokens: torch.Tensor, B: int) -> dict:
    L = tokens.numel() // B
    return {
        "the tokens are dealt out in turn (interleaved: row b holds tokens b, b+B, b+2B, ...); "
        "each row must be one unbroken stretch of the stream": tokens[: B * L].view(L, B).T,
        "the ragged tail is dropped from the start of the stream instead of its end":
            tokens[tokens.numel() - B * L:].view(B, L),
    }


def _seeded_cases(hidden: bool, names: str, build, low: int, high: int) -> list:
    plan = _token_plan(hidden)
    cases = []
    for i, (seed, dtype, device) in enumerate(plan):
        gen = torch.Generator().manual_seed(seed)
        sizes = distinct_sizes(gen, names, low, high)
        if "L" in sizes and sizes["L"] < sizes["B"]:  # streams are longer than the batch is wide
            sizes["B"], sizes["L"] = sizes["L"], sizes["B"]
        args = build(gen, {**sizes, "seed": seed})
        if "tokens" in args:
            sizes["N"] = args["tokens"].numel()
        if "streams" in args:
            sizes["L"] = args["streams"].shape[1]
        cases.append(make_case(i, len(plan), seed, dtype, device, sizes, args))
    return cases


def check_batchify(batchify, hidden: bool = False) -> None:
    """batchify(tokens (N,), batch_size) -> (B, N // B): row b is tokens[b*L:(b+1)*L],
    L = N // B, and the last N mod B tokens are dropped."""
    cases = _seeded_cases(hidden, "BL", _batchify_args, 3, 12)
    for case in cases:
        out = call_learner(batchify, case, "batchify")
        B, L = case.sizes["B"], case.sizes["L"]
        tokens = case.args["tokens"].cpu()
        tail = tokens.numel() - B * L
        hints = {(L, B): "transposed: time-first; the course is batch-first, one row per stream",
                 (B * L,): "that is the stream with its tail dropped; reshape it into B rows"}
        if tail:
            hints[(B, L + 1)] = (f"one column too many: the {tail} tokens left over are kept; "
                                 "the lesson drops them")
        _validate_tokens(out, case, "batchify", "streams", (B, L), hints)
        got = out.cpu()
        if torch.equal(got, tokens[: B * L].view(B, L)):
            continue
        where = f"batchify, {case.label}"
        for phrase, wrong in _batchify_variants(tokens, B).items():
            if torch.equal(got, wrong):
                raise CheckFailed(f"{where}: streams are wrong. They match what you get if {phrase}.")
        bad = int((got != tokens[: B * L].view(B, L)).sum())
        raise CheckFailed(f"{where}: streams are wrong: {bad} of {B * L} tokens are not where they "
                          f"should be. Row b must hold tokens[b*L:(b+1)*L] with L = N // B = {L}.")
    passed("batchify", cases, hidden)


def reference_chunks(streams: torch.Tensor, seq_len: int, step: int | None = None,
                     shift: int = 1, keep_tail: bool = True, swap: bool = False,
                     stop: int = 1) -> list:
    """The lesson's chunks (defaults), or a wrong variant of them."""
    L = streams.shape[1]
    chunks = []
    for i in range(0, L - stop, step or seq_len):
        n = min(seq_len, L - 1 - i)
        if n < seq_len and not keep_tail:
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
    "is never an input": dict(step="+1"),
    "each chunk starts seq_len - 1 tokens after the previous one, so chunks overlap by a token":
        dict(step="-1"),
    "the loop runs over all L positions instead of L - 1, adding an empty chunk at the end "
    "(when the row splits exactly)": dict(stop=0),
}


def _chunk_variants(streams: torch.Tensor, S: int) -> dict:
    out = {}
    for phrase, kw in _CHUNK_VARIANTS.items():
        kw = dict(kw)
        if kw.get("step") in ("+1", "-1"):
            kw["step"] = S + int(kw["step"])
        out[phrase] = reference_chunks(streams, S, **kw)
    return out


def _same_chunks(got: list, want: list) -> bool:
    return len(got) == len(want) and all(
        isinstance(p, (tuple, list)) and len(p) == 2
        and all(isinstance(t, torch.Tensor) and t.shape == w.shape and torch.equal(t.cpu(), w)
                for t, w in zip(p, q)) for p, q in zip(got, want))


def _tbptt_args(gen: torch.Generator, s: dict) -> dict:
    B, S = s["B"], s["S"]
    k = int(torch.randint(2, 5, (1,), generator=gen))
    # Odd seeds: the row splits exactly into chunks; even seeds: a shorter last chunk.
    L = k * S + 1 + (int(torch.randint(1, S, (1,), generator=gen)) if s["seed"] % 2 == 0 else 0)
    return {"streams": (torch.randperm(B * L, generator=gen) + 100).view(B, L), "seq_len": S}


def check_tbptt_batches(tbptt_batches, hidden: bool = False) -> None:
    """tbptt_batches(streams (B, L), seq_len) -> [(inputs, targets), ...]: chunk k starts at
    i = k * seq_len, n = min(seq_len, L - 1 - i), inputs streams[:, i:i+n], targets
    streams[:, i+1:i+1+n]."""
    cases = _seeded_cases(hidden, "BS", _tbptt_args, 2, 9)
    for case in cases:
        out = call_learner(tbptt_batches, case, "tbptt_batches")
        where = f"tbptt_batches, {case.label}"
        try:
            got = list(out)
        except TypeError:
            raise CheckFailed(f"{where}: expected a list of (inputs, targets) pairs, got "
                              f"{type(out).__name__}.") from None
        streams, S = case.args["streams"].cpu(), case.sizes["S"]
        B, L = streams.shape
        want = reference_chunks(streams, S)
        if _same_chunks(got, want):
            continue
        for phrase, wrong in _chunk_variants(streams, S).items():
            if _same_chunks(got, wrong):
                raise CheckFailed(f"{where}: the chunks are wrong. They match what you get if {phrase}.")
        if len(got) != len(want):
            raise CheckFailed(f"{where}: expected {len(want)} chunks for rows of length L={L} and "
                              f"seq_len={S}, got {len(got)}. Chunks start at 0, seq_len, 2*seq_len, "
                              "... while at least one target is left; the last may be shorter.")
        for k, (pair, (x, y)) in enumerate(zip(got, want)):
            if not isinstance(pair, (tuple, list)) or len(pair) != 2:
                raise CheckFailed(f"{where}: chunk {k} should be a pair (inputs, targets), got "
                                  f"{type(pair).__name__}.")
            for name, t, w in (("inputs", pair[0], x), ("targets", pair[1], y)):
                hint = {(B, S): "the last chunk is shorter: don't pad it"} if w.shape[1] < S else {}
                _validate_tokens(t, case, "tbptt_batches", f"chunk {k} {name}", tuple(w.shape), hint)
                if not torch.equal(t.cpu(), w):
                    bad = int((t.cpu() != w).sum())
                    raise CheckFailed(f"{where}: chunk {k} {name}: {bad} of {w.numel()} tokens are "
                                      f"wrong. With i = {k}*seq_len, inputs are streams[:, i:i+n] and "
                                      "targets streams[:, i+1:i+1+n].")
    passed("tbptt_batches", cases, hidden)
