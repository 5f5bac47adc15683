r"""Checks for lesson 11 (modern recurrences): linear_recurrence, parallel_scan,
mingru and stream_step.

Shapes: a, b (B, T, H), h0 (B, H), the result h (B, T, H) with h[:, t] the state
after step t + 1 of h_t = a_t * h_{t-1} + b_t. minGRU: x (B, T, I), W_ih (2H, I)
with rows (z, h̃), b_ih (2H,):  z = sigmoid(x W_z^T + b_z), h̃ = x W_h^T + b_h,
h_t = (1 - z_t) h_{t-1} + z_t h̃_t.

References: :mod:`rnncourse.scan` and :mod:`rnncourse.mingru` (float64, CPU,
outside the blocked region). A parallel exercise must also be parallel:
:func:`operations` counts the tensor operations the learner's function issues
(every torch function, method and operator, through a ``TorchFunctionMode``) at
T = 16 and T = 1024. A scan's rounds grow like log2 T (4 against 10), a loop's
steps like T (16 against 1024): more than 3 times as many operations at the long
length is a loop in disguise. Any associative formulation (Hillis–Steele,
Blelloch, a recursive odd-even scan) passes. Each exercise also runs once on
torch's 'meta' device, which has no values, so a tensor created on the CPU by
mistake fails on a grader without a GPU.
"""
from __future__ import annotations

import dataclasses

import torch
from torch.overrides import TorchFunctionMode

from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, make_case, on_cpu64, passed, randn,
    validate, validate_items,
)
from rnncourse.mingru import MinGRUModel, mingru_coefficients
from rnncourse.scan import scan_parallel, scan_rounds, scan_sequential

SHORT, LONG = 16, 1024  # the lengths at which the operations are counted
GROWTH = 3.0            # a scan: (log2 1024 + c) / (log2 16 + c) <= 2.5; a loop: about 64

_SHAPES = "a and b are (B, T, H), batch-first; h0 is (B, H); return h of shape (B, T, H)."


# ----------------------------------------------------------------------------
# cases

def _scan_args(gen, s, T):
    """a in (-1, 1), mostly positive (gates are), b normal, h0 normal; T, B or H may be 1."""
    T, B, H = (T if isinstance(T, tuple) else (T, s["B"], s["H"]))
    a = torch.tanh(randn(gen, B, T, H, scale=1.2) + 0.8)
    return Drawn({"a": a, "b": randn(gen, B, T, H), "h0": randn(gen, B, H)}, sizes={"T": T, "B": B, "H": H})


# T powers of two and not, 1 included; (T, B, H) tuples draw sizes of 1 by hand. At T = 3000
# the products a_1 ... a_t underflow: the cumprod/cumsum shortcut divides by zero there.
SCAN_PLAN = Plan("BH", _scan_args, visible_seeds=(0, 1, 2), hidden_seeds=tuple(range(10, 19)),
                 variants=(5, (3000, 2, 3), (1, 3, 4), 13, 8, (7, 1, 1), 100, 2, 64))


def _reference_scan(args: dict) -> torch.Tensor:
    return scan_sequential(args["a"], args["b"], args["h0"])  # (B, T, H), float64


# ----------------------------------------------------------------------------
# known wrong variants

def scan_variant(a, b, h0, *, order_swapped=False, drop_h0=False, shift=0, rounds=0, swap_ab=False):
    """Hillis–Steele with one mistake per keyword (all off: the right answer).

    ``order_swapped``: the pair d steps back is treated as the LATER one,
    (A, B) <- (A A', A' B + B') with ' the earlier pair; ``shift``: the partner
    is d + shift steps back; ``rounds``: +1 / -1 round (or first round skipped
    with "skip_first"); ``swap_ab``: the roles of a and b exchanged."""
    if swap_ab:
        a, b = b, a
    T = a.shape[1]
    A = a
    Bv = b if drop_h0 else torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1)
    total = scan_rounds(T) + (rounds if isinstance(rounds, int) else 0)
    d = 2 if rounds == "skip_first" else 1
    for _ in range(total - (rounds == "skip_first")):
        back = d + shift
        if 0 < back < T:
            Ap = torch.cat([torch.ones_like(A[:, :back]), A[:, :-back]], dim=1)
            Bp = torch.cat([torch.zeros_like(Bv[:, :back]), Bv[:, :-back]], dim=1)
            if order_swapped:
                A, Bv = A * Ap, Ap * Bv + Bp
            else:
                A, Bv = A * Ap, A * Bp + Bv
        d *= 2
    return Bv


_SCAN_MISTAKES = {
    "the combine is applied in the wrong order: the pair d steps back is treated as the later "
    "map, (A, B) <- (A'A, A'B + B'), which is not the composition written (first the earlier "
    "map, then the later: (A'A, A B' + B))": dict(order_swapped=True),
    "the initial state h0 is dropped (fold it into the first step: b_1 <- a_1 h0 + b_1)": dict(drop_h0=True),
    "each round looks d + 1 steps back instead of d (an off-by-one shift between rounds)": dict(shift=1),
    "each round looks d - 1 steps back instead of d (an off-by-one shift between rounds)": dict(shift=-1),
    "the last round is missing (loop while d < T, doubling d from 1)": dict(rounds=-1),
    "the first round (offset 1) is skipped": dict(rounds="skip_first"),
    "a and b are swapped: h_t = b_t h_{t-1} + a_t": dict(swap_ab=True),
}


def _sequential_variants(a, b, h0) -> dict:
    def loop(step, h=h0):
        out = []
        for t in range(a.shape[1]):
            h = step(a[:, t], b[:, t], h)
            out.append(h)
        return torch.stack(out, 1)
    shifted = torch.cat([h0[:, None], scan_sequential(a, b, h0)[:, :-1]], dim=1)
    return {
        "the initial state h0 is dropped (the loop starts from zeros)": loop(lambda a_, b_, h: a_ * h + b_,
                                                                             torch.zeros_like(h0)),
        "a and b are swapped: h_t = b_t h_{t-1} + a_t": loop(lambda a_, b_, h: b_ * h + a_),
        "the states are shifted by one step: you return h_0 .. h_{T-1} instead of h_1 .. h_T": shifted,
        "b is inside the product: h_t = a_t (h_{t-1} + b_t)": loop(lambda a_, b_, h: a_ * (h + b_)),
    }


def scan_variants(args: dict, parallel: bool) -> dict:
    a, b, h0 = args["a"], args["b"], args["h0"]
    out = {p: scan_variant(a, b, h0, **kw) for p, kw in _SCAN_MISTAKES.items()} if parallel else {}
    out.update(_sequential_variants(a, b, h0))
    return out


# ----------------------------------------------------------------------------
# counting operations, and the meta device

class _Counter(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def operations(fn, args: dict, exercise: str) -> int:
    """How many torch functions, methods and operators ``fn(**args)`` calls, blocked
    like any call of the learner's code."""
    case = make_case(0, 1, 0, torch.float64, torch.device("cpu"), {}, args, title=f"T = {args_T(args)}")
    counter = _Counter()
    with counter:
        call_learner(fn, case, exercise)
    return counter.calls


def args_T(args: dict) -> int:
    return next(v for v in args.values() if isinstance(v, torch.Tensor) and v.dim() == 3).shape[1]


def check_rounds(fn, exercise: str, make_args) -> None:
    """Fail when ``fn``'s operation count grows like T rather than log T."""
    short, long_ = operations(fn, make_args(SHORT), exercise), operations(fn, make_args(LONG), exercise)
    if long_ > GROWTH * max(short, 1):
        raise CheckFailed(
            f"{exercise} is not parallel: it issued {short} tensor operations at T = {SHORT} and {long_} at "
            f"T = {LONG}, {long_ / max(short, 1):.0f} times as many. That grows like T: your function steps "
            f"through time one position at a time (a loop in disguise). A parallel scan combines pairs in "
            f"rounds, each over all steps at once: {scan_rounds(SHORT)} rounds at T = {SHORT}, "
            f"{scan_rounds(LONG)} at T = {LONG}.")


def call_on_meta(fn, case, exercise: str):
    """``call_learner`` for a case on the 'meta' device: the same blocks and quiet
    stderr, but no in-place comparison of the inputs (meta tensors hold no values)."""
    blank = dataclasses.replace(case, args={})  # call_learner has nothing to copy or compare
    args = dict(case.args)

    def on_meta():  # the learner gets fresh meta tensors (clones), as call_learner gives copies
        return fn(*[v.clone() if isinstance(v, torch.Tensor) else v for v in args.values()])
    return call_learner(on_meta, blank, exercise)


def check_meta(fn, exercise: str, args: dict, what: str, shape: tuple) -> None:
    """Run ``fn`` once with tensors on torch's 'meta' device (shapes, no values): a
    tensor made on the CPU by mistake shows up here, without a GPU."""
    case = make_case(0, 1, 0, torch.float32, torch.device("meta"), {}, args, title="tensors on the 'meta' device")
    try:
        out = call_on_meta(fn, case, exercise)
    except CheckFailed as e:
        raise CheckFailed(f"{e}\nHint: on the 'meta' device (a stand-in for a GPU: shapes, no values) "
                          "every tensor you create must be on the inputs' device (device=a.device, "
                          "torch.zeros_like, new_zeros), and no value can be read with .item() or an if "
                          "on a tensor.") from None
    out = out[0] if isinstance(out, (tuple, list)) and out else out
    if not isinstance(out, torch.Tensor) or out.device.type != "meta" or tuple(out.shape) != shape:
        got = f"{type(out).__name__} on {getattr(out, 'device', '?')}"
        raise CheckFailed(f"{exercise}, {case.label}: {what} should be a tensor of shape {shape} on the "
                          f"inputs' device 'meta', got {got}. Create tensors on the inputs' device.")


def check_gradients(fn, exercise: str, args: dict, reference, names) -> None:
    """Back-propagate a random cotangent through ``fn`` and the reference; the
    gradients of the inputs named must agree (the notebook trains through it)."""
    gen = torch.Generator().manual_seed(99)
    leaves = {k: (v.clone().requires_grad_() if k in names else v) for k, v in args.items()}
    case = make_case(0, 1, 0, torch.float64, torch.device("cpu"), {}, leaves, title="gradients")
    out = call_learner(fn, case, exercise)
    out = validate(out, case, exercise, "the output", tuple(reference(**args).shape))
    if not out.requires_grad:
        raise CheckFailed(f"{exercise}, {case.label}: the output does not depend on the inputs through autograd "
                          "(.detach(), torch.no_grad() or a copy through .tolist()/numpy cut the graph); a "
                          "model could not train through it.")
    cot = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, [leaves[n] for n in names], cot, allow_unused=True)
    ref_leaves = {k: (v.clone().requires_grad_() if k in names else v) for k, v in args.items()}
    want = torch.autograd.grad(reference(**ref_leaves), [ref_leaves[n] for n in names], cot)
    for n, g, w in zip(names, got, want):
        if g is None:
            raise CheckFailed(f"{exercise}, {case.label}: no gradient reaches '{n}'.")
        compare(g, w, case, exercise, f"the gradient of '{n}'")


# ----------------------------------------------------------------------------
# linear_recurrence(a, b, h0) and parallel_scan(a, b, h0)

def _round_args(T: int) -> dict:
    gen = torch.Generator().manual_seed(T)
    return {"a": torch.rand(2, T, 3, generator=gen, dtype=torch.float64),
            "b": torch.randn(2, T, 3, generator=gen, dtype=torch.float64),
            "h0": torch.randn(2, 3, generator=gen, dtype=torch.float64)}


def _check_scan(fn, exercise: str, hidden: bool, parallel: bool) -> None:
    cases = build_cases(hidden, SCAN_PLAN)
    for case in cases:
        out = call_learner(fn, case, exercise, hint_on_error=_SHAPES)
        B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
        validate(out, case, exercise, "h", ("B", "T", "H"), shape_hints={
            (B, T + 1, H): "that includes h0: return the T states after it, h_1 .. h_T",
            (B, H): "that is the last state only: return every state, (B, T, H)",
            (T, B, H): "time-first: keep the batch first, (B, T, H)"})
        args = on_cpu64(case)
        compare(out, _reference_scan(args), case, exercise, "h", scan_variants(args, parallel))
    check_meta(fn, exercise, _round_args(5), "h", (2, 5, 3))
    if parallel:
        check_rounds(fn, exercise, _round_args)
        check_gradients(fn, exercise, _round_args(11), scan_sequential, ("a", "b", "h0"))
    passed(exercise, cases, hidden)


def check_linear_recurrence(linear_recurrence, hidden: bool = False) -> None:
    """linear_recurrence(a, b, h0) -> h (B, T, H), h_t = a_t h_{t-1} + b_t."""
    _check_scan(linear_recurrence, "linear_recurrence", hidden, parallel=False)


def check_parallel_scan(parallel_scan, hidden: bool = False) -> None:
    """parallel_scan(a, b, h0) equals the recurrence for any T, and takes O(log T) rounds."""
    _check_scan(parallel_scan, "parallel_scan", hidden, parallel=True)


# ----------------------------------------------------------------------------
# mingru(x, h0, W_ih, b_ih)

def _mingru_args(gen, s, T):
    T, B, H = (T if isinstance(T, tuple) else (T, s["B"], s["H"]))
    I = s["I"]
    return Drawn({"x": randn(gen, B, T, I), "h0": randn(gen, B, H),
                  "W_ih": randn(gen, 2 * H, I, scale=0.7), "b_ih": randn(gen, 2 * H, scale=0.5)},
                 sizes={"T": T, "B": B, "H": H})


MINGRU_PLAN = Plan("BIH", _mingru_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13),
                   variants=(6, (1, 2, 3), 9, (12, 1, 1), 33))


def mingru_reference(x, h0, W_ih, b_ih):
    a, b, _ = mingru_coefficients(x, W_ih, b_ih)  # each (B, T, H)
    return scan_sequential(a, b, h0)


def mingru_variant(x, h0, W_ih, b_ih, *, swap_z=False, tanh=False, rows_swapped=False, drop_h0=False):
    k, cand = (x @ W_ih.T + b_ih).chunk(2, dim=-1)
    if rows_swapped:
        k, cand = cand, k
    z = torch.sigmoid(k)
    cand = torch.tanh(cand) if tanh else cand
    a, b = (z, (1 - z) * cand) if swap_z else (1 - z, z * cand)
    return scan_sequential(a, b, torch.zeros_like(h0) if drop_h0 else h0)


_MINGRU_MISTAKES = {
    "(1 - z) and z are swapped: h_t = z_t h_{t-1} + (1 - z_t) h̃_t (PyTorch's GRU convention; the "
    "minGRU's z weights the candidate)": dict(swap_z=True),
    "the candidate goes through tanh; in the minGRU it is linear, h̃_t = x_t W_h^T + b_h": dict(tanh=True),
    "the row blocks are read as (h̃, z) instead of (z, h̃)": dict(rows_swapped=True),
    "h0 is dropped": dict(drop_h0=True),
}


def _not_affine_in_h0(fn, case) -> bool:
    """The minGRU's states are affine in h0: f(2 h0) - f(0) = 2 (f(h0) - f(0))."""
    outs = []
    for scale in (0.0, 1.0, 2.0):
        args = dict(case.args)
        args["h0"] = case.args["h0"] * scale
        c = dataclasses.replace(case, args=args)
        outs.append(call_learner(fn, c, "mingru").detach().to("cpu", torch.float64))
    if any(o.shape != outs[0].shape for o in outs):
        return False
    return not torch.allclose(outs[2] - outs[0], 2 * (outs[1] - outs[0]), atol=1e-4, rtol=1e-3)


def check_mingru(mingru, hidden: bool = False) -> None:
    """mingru(x, h0, W_ih, b_ih) -> h (B, T, H), the minGRU's states by a parallel scan."""
    cases = build_cases(hidden, MINGRU_PLAN)
    hint = "x is (B, T, I), h0 (B, H), W_ih (2H, I) with rows (z, h̃), b_ih (2H,); return h (B, T, H)."
    for case in cases:
        out = call_learner(mingru, case, "mingru", hint_on_error=hint)
        validate(out, case, "mingru", "h", ("B", "T", "H"))
        a = on_cpu64(case)
        want = mingru_reference(**a)
        variants = {p: mingru_variant(**a, **kw) for p, kw in _MINGRU_MISTAKES.items()}
        try:
            compare(out, want, case, "mingru", "h", variants)
        except CheckFailed as e:
            if "It matches what you get if" not in str(e) and _not_affine_in_h0(mingru, case):
                raise CheckFailed(
                    f"mingru, {case.label}: h is wrong, and not an affine function of h0 as a minGRU's "
                    "states are: something reads h_{t-1} through a nonlinearity, most likely the gate fed "
                    "h_{t-1} (as the GRU's z is). Then the recurrence is no longer linear and cannot be "
                    "scanned; in the minGRU, z_t and h̃_t read x_t only.") from None
            raise
    make = lambda T: {"x": _round_args(T)["b"][..., :2], "h0": _round_args(T)["h0"],  # noqa: E731
                      "W_ih": torch.linspace(-1, 1, 12, dtype=torch.float64).view(6, 2),
                      "b_ih": torch.linspace(-0.5, 0.5, 6, dtype=torch.float64)}
    check_meta(mingru, "mingru", make(5), "h", (2, 5, 3))
    check_rounds(mingru, "mingru", make)
    check_gradients(mingru, "mingru", make(9), mingru_reference, ("x", "h0", "W_ih", "b_ih"))
    passed("mingru", cases, hidden)


# ----------------------------------------------------------------------------
# stream_step(model, x_t, state) -> (y_t, state)

def _stream_args(gen, s, L):
    return Drawn({"x": randn(gen, s["B"], s["T"], s["I"])},
                 sizes={"L": L, "O": s["O"]}, context={"model_seed": int(torch.randint(1000, (1,), generator=gen)),
                                                       "L": L})


STREAM_PLAN = Plan("BTIHO", _stream_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12), variants=(2, 1, 3))


def stream_model(case_or_sizes, seed: int, L: int, dtype=torch.float64, device="cpu") -> MinGRUModel:
    s = case_or_sizes
    torch.manual_seed(seed)
    model = MinGRUModel(s["I"], s["H"], s["O"], num_layers=L)
    with torch.no_grad():  # biases larger than the default init, so gates differ from 0.5
        for p in model.rnn.parameters():
            p.mul_(2.0)
    return model.to(device=device, dtype=dtype).eval()


def stream_variant(model, x, *, reset=False, one_state=False, head_on_first=False, swap_z=False):
    """Outputs (B, T, O) of a wrong stream, one mistake per keyword."""
    L, H = model.rnn.num_layers, model.rnn.hidden_size
    state = x.new_zeros(L, x.shape[0], H)
    ys = []
    for t in range(x.shape[1]):
        if reset:
            state = torch.zeros_like(state)
        inp, new = x[:, t], []
        for k in range(L):
            W, b = model.rnn.layer_weights(k)
            g, cand = (inp @ W.T + b).chunk(2, dim=-1)
            z = torch.sigmoid(g)
            h_prev = state[0] if one_state else state[k]
            inp = z * h_prev + (1 - z) * cand if swap_z else (1 - z) * h_prev + z * cand
            new.append(inp)
        state = torch.stack(new)
        ys.append(model.head(new[0] if head_on_first else inp))
    return torch.stack(ys, 1)


_STREAM_MISTAKES = {
    "the state is not carried: every token starts again from zeros": dict(reset=True),
    "every layer reads the first layer's state (each layer k must carry its own state[k])": dict(one_state=True),
    "the head reads the first layer's state instead of the last layer's": dict(head_on_first=True),
    "(1 - z) and z are swapped in the step": dict(swap_z=True),
}


def _stream(fn, model, x, case, meta: bool = False):
    """Drive ``fn`` over x one token at a time: (outputs (B, T, O), final state).
    On the meta device only types, shapes and devices can be checked."""
    B, T = x.shape[0], x.shape[1]
    L, H, O = model.rnn.num_layers, model.rnn.hidden_size, model.head.out_features
    state, ys = None, []
    for t in range(T):
        step_case = dataclasses.replace(case, args={"model": model, "x_t": x[:, t], "state": state},
                                        title=f"{str(case.dtype).replace('torch.', '')} on {case.device.type}, "
                                              f"B={B}, L={L}, H={H}, O={O}; token t = {t + 1} of {T}")
        if meta:
            out = call_on_meta(fn, step_case, "stream_step")
        else:
            out = call_learner(fn, step_case, "stream_step", hint_on_error="state is None for the first "
                               "token, then the (L, B, H) tensor you returned.")
        y, state = validate_items(out, step_case, "stream_step", ("y_t", "state"))
        if meta:
            for name, v, shape in (("y_t", y, (B, O)), ("state", state, (L, B, H))):
                if not isinstance(v, torch.Tensor) or v.device.type != "meta" or tuple(v.shape) != shape:
                    raise CheckFailed(f"stream_step, {step_case.label}: {name} should be a tensor of shape "
                                      f"{shape} on the inputs' device 'meta', got "
                                      f"{type(v).__name__} on {getattr(v, 'device', '?')}.")
            ys.append(y)
            continue
        validate(y, step_case, "stream_step", "y_t", (B, O))
        if not isinstance(state, torch.Tensor) or tuple(state.shape) != (L, B, H):
            got = tuple(state.shape) if isinstance(state, torch.Tensor) else type(state).__name__
            raise CheckFailed(
                f"stream_step, {step_case.label}: the state should be a tensor of shape (L, B, H) = {(L, B, H)}, "
                f"one hidden state per layer, the same size at every token; got {got}. A recurrent model "
                "streams with a constant-size state: it keeps no history of the inputs.")
        validate(state, step_case, "stream_step", "state", (L, B, H))
        ys.append(y)
    return torch.stack(ys, dim=1), state


def check_stream_step(stream_step, hidden: bool = False) -> None:
    """Fed one token at a time with the state it returns, stream_step(model, x_t, state)
    gives the whole-sequence forward's outputs, model(x) (B, T, O), and h_n."""
    cases = build_cases(hidden, STREAM_PLAN)
    for case in cases:
        x = case.args["x"]
        model = stream_model(case.sizes, case.context["model_seed"], case.context["L"], case.dtype, case.device)
        ys, state = _stream(stream_step, model, x, case)
        ref_model = stream_model(case.sizes, case.context["model_seed"], case.context["L"])
        x64 = on_cpu64(case)["x"]
        with torch.no_grad():
            want = ref_model(x64)  # (B, T, O): the whole sequence at once
            want_h = ref_model.rnn(x64)[1]  # (L, B, H)
            variants = {p: stream_variant(ref_model, x64, **kw) for p, kw in _STREAM_MISTAKES.items()}
        compare(ys, want, case, "stream_step", "the output sequence (y_1 .. y_T stacked)", variants)
        compare(state, want_h, case, "stream_step", "the state after the last token")
    sizes = {"I": 2, "H": 3, "O": 4}
    meta_model = stream_model(sizes, 0, 2, torch.float32, "meta")
    meta_case = make_case(0, 1, 0, torch.float32, torch.device("meta"), {}, {"x": torch.zeros(2, 3, 2)},
                          title="tensors on the 'meta' device")
    try:
        _stream(stream_step, meta_model, meta_case.args["x"], meta_case, meta=True)
    except CheckFailed as e:
        raise CheckFailed(f"{e}\nHint: create the first state on the input's device and in its dtype "
                          "(x_t.new_zeros(L, B, H)); the 'meta' device stands in for a GPU.") from None
    passed("stream_step", cases, hidden)
