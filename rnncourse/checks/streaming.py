"""Check for lesson 11's streaming exercise: stream_step(model, x_t, state).

The check drives the learner's function token by token, from ``state=None``,
feeding back the state it returns, over a random :class:`~rnncourse.mingru.MinGRUModel`
of 1 to 3 layers, and compares the outputs (B, T, O) and the last state with the
whole-sequence forward ``model(x)`` (float64, CPU, outside the blocked region).
The state must be an (L, B, H) tensor at every token: a recurrent model streams
with a constant-size state, so one that grows is refused. While the learner's code
runs the model's own forward and step are blocked (they are the reference).
"""
from __future__ import annotations

import dataclasses

import torch

from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, make_case, on_cpu64, passed, randn,
    validate, validate_items,
)
from rnncourse.checks.parallel import call_on_meta
from rnncourse.mingru import MinGRUModel

# The one accessor of the model the learner may call (it returns a layer's weight and
# bias, computing nothing); the model's forward and step stay switched off.
_ALLOW = ("rnncourse.mingru._MinBase.layer_weights",)

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
            out = call_on_meta(fn, step_case, "stream_step", allow=_ALLOW)
        else:
            out = call_learner(fn, step_case, "stream_step", allow=_ALLOW, hint_on_error="state is None for the first "
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
