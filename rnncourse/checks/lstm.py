"""Checks for lesson 04 (the LSTM): lstm_step, lstm_forward, peephole_lstm_step.

Shapes follow the course: x_t (B, I), x (B, T, I) batch-first, h and c (B, H),
and PyTorch's weight layout with the gate rows stacked in the order i, f, g, o:
W_ih (4H, I), W_hh (4H, H), b_ih and b_hh (4H,); peephole weights w_ci, w_cf,
w_co (H,). References come from ``rnncourse.functional.lstm_cell`` and, for the
peephole step, ``PeepholeLSTMCell`` with the weights copied in; the known wrong variants are
computed here by :func:`_variant`, one keyword per mistake.
"""
from __future__ import annotations

from itertools import permutations

import torch

from rnncourse import functional as F
from rnncourse.checks.core import (
    Drawn, Plan, build_cases, call_learner, compare, helper_first, on_cpu64, on_shape_error, passed,
    randn, validate, validate_items,
)

_LAYOUT = ("W_ih is (4H, I) and W_hh is (4H, H): the pre-activations of all four gates are "
           "x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh, shape (B, 4H), and its four blocks of H "
           "columns are the gates in the order i, f, g, o (e.g. .chunk(4, dim=1)).")
_PEEP_NAMES = ("w_ci", "w_cf", "w_co")
# the layout hint where the evidence is about shapes; the equations where it is about values
_ON_SHAPES = on_shape_error(_LAYOUT)
_EQUATIONS = ("i, f, o = sigmoid of their blocks, g = tanh of its block; c_t = f * c_prev + i * g; "
              "h_t = o * tanh(c_t).")


# ----------------------------------------------------------------------------
# cases and references

def _weights(gen: torch.Generator, I: int, H: int) -> dict:
    # Random normal matrices are non-symmetric; the scales keep the gates away
    # from saturation, where wrong variants (tanh vs sigmoid, ...) look alike.
    return {
        "W_ih": randn(gen, 4 * H, I, scale=0.5),
        "W_hh": randn(gen, 4 * H, H, scale=0.5),
        "b_ih": randn(gen, 4 * H, scale=0.5),
        "b_hh": randn(gen, 4 * H, scale=0.5),
    }


def _peepholes(gen: torch.Generator, H: int) -> dict:
    return {name: randn(gen, H, scale=0.7) for name in _PEEP_NAMES}


def _state(gen, B: int, H: int) -> dict:
    # c is not squashed: |c| > 1 is common, and it separates h = o*tanh(c) from h = o*c.
    return {"h_prev": randn(gen, B, H, scale=0.8).tanh(), "c_prev": randn(gen, B, H, scale=1.2)}


def _step_args(gen, s):
    B, I, H = s["B"], s["I"], s["H"]
    return {"x_t": randn(gen, B, I), **_state(gen, B, H), **_weights(gen, I, H)}


def _peephole_args(gen, s):
    return {**_step_args(gen, s), **_peepholes(gen, s["H"])}


def _forward_args(gen, s):
    B, T, I, H = s["B"], s["T"], s["I"], s["H"]
    st = _state(gen, B, H)
    return {"x": randn(gen, B, T, I), "h0": st["h_prev"], "c0": st["c_prev"], **_weights(gen, I, H)}


def _reference_step(a: dict) -> tuple:
    # rnncourse.functional's cell, called outside the blocked region: only the
    # learner's code runs blocked.
    return F.lstm_cell(a["x_t"], (a["h_prev"], a["c_prev"]), a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"])


def _reference_peephole(a: dict) -> tuple:
    # The peephole equations live in rnncourse's PeepholeLSTMCell only.
    from rnncourse import PeepholeLSTMCell
    H4, I = a["W_ih"].shape
    cell = PeepholeLSTMCell(I, H4 // 4, dtype=torch.float64)
    cell.load_state_dict({"weight_ih": a["W_ih"], "weight_hh": a["W_hh"], "bias_ih": a["b_ih"],
                          "bias_hh": a["b_hh"], "weight_ci": a["w_ci"], "weight_cf": a["w_cf"],
                          "weight_co": a["w_co"]})
    with torch.no_grad():
        return cell(a["x_t"], (a["h_prev"], a["c_prev"]))


def _reference_forward(a: dict) -> tuple:
    """(outputs (B, T, H), h_T, c_T), step by step with functional.lstm_cell."""
    h, c, outputs = a["h0"], a["c0"], []
    for t in range(a["x"].shape[1]):
        h, c = F.lstm_cell(a["x"][:, t], (h, c), a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"])
        outputs.append(h)
    return torch.stack(outputs, dim=1), h, c


def _peephole_gradient(a: dict) -> tuple:
    # PeepholeLSTMCell copies the weights in (no gradient reaches a's tensors), so the
    # gradient case uses the same equations written out: _variant with no mistake.
    return _variant(a["x_t"], a["h_prev"], a["c_prev"], a, peep=_PEEP)


# Sizes of 1 in one case each (a batch of one, one feature, one unit, one step); a
# meta-device run (a tensor made without device=); a gradient case: models train through all three.
STEP_PLAN = Plan("BIH", lambda gen, s: Drawn(_step_args(gen, s)), ones="BIH", meta=True,
                 gradient=_reference_step)
PEEPHOLE_PLAN = Plan("BIH", lambda gen, s: Drawn(_peephole_args(gen, s)), ones="BIH", meta=True,
                     gradient=lambda a: _peephole_gradient(a))
FORWARD_PLAN = Plan("BTIH", lambda gen, s: Drawn(_forward_args(gen, s)), ones="BTIH", meta=True,
                    gradient=_reference_forward)


# ----------------------------------------------------------------------------
# known wrong variants

def _variant(x, h, c, a, order="ifgo", act="ssts", W_hh_blocks_T=False, W_ih_T=False,
             b_ih=True, b_hh=True, cell="f*c+i*g", out="o*tanh(c)", peep=None):
    """One LSTM step computed with the named mistakes; returns (h_t, c_t).

    ``order``: how the learner reads the four row blocks (``"ifog"`` means the
    third block is taken as o). ``act``: sigmoid "s" / tanh "t" / none "-" on
    i, f, g, o. ``peep``: gate -> ("name of the peephole weight", "old"/"new")
    for the peephole variants, or None for a plain LSTM. Returns (None, None) for
    a mistake that cannot run at these sizes (a transposed non-square W_ih).
    """
    H = h.shape[1]
    W_ih, W_hh = a["W_ih"], a["W_hh"]
    if W_ih_T:  # x_t @ W_ih runs without an error only when W_ih is square (I = 4H)
        if W_ih.shape[0] != W_ih.shape[1]:
            return None, None
        W_ih = W_ih.T
    if W_hh_blocks_T:  # each gate's (H, H) block used as h @ W instead of h @ W.T
        W_hh = torch.cat([blk.T for blk in W_hh.split(H)])
    z = x @ W_ih.T + h @ W_hh.T  # (B, 4H)
    z = z + (a["b_ih"] if b_ih else 0) + (a["b_hh"] if b_hh else 0)
    blocks = dict(zip(order, z.split(H, dim=1)))  # gate name -> (B, H) pre-activation
    fns = {"s": torch.sigmoid, "t": torch.tanh, "-": lambda v: v}
    peep = peep or {}

    def gate(k, c_old, c_new=None):
        pre = blocks[k]
        if k in peep:  # a peephole: elementwise weight (H,) times the old or the new cell state
            name, which = peep[k]
            pre = pre + a[name] * (c_old if which == "old" else c_new)
        return fns[act["ifgo".index(k)]](pre)

    i, f, g = gate("i", c), gate("f", c), gate("g", c)
    new_c = {"f*c+i*g": f * c + i * g, "i*c+f*g": i * c + f * g, "f*c*i*g": f * c * i * g,
             "(1-f)*c+i*g": (1 - f) * c + i * g, "f*c+(1-f)*g": f * c + (1 - f) * g,
             "f*c+g": f * c + g, "c+i*g": c + i * g}[cell]
    o = gate("o", c, new_c)
    new_h = {"o*tanh(c)": o * torch.tanh(new_c), "o*c": o * new_c, "tanh(o*c)": torch.tanh(o * new_c),
             "o*tanh(c_prev)": o * torch.tanh(c), "tanh(c)": torch.tanh(new_c)}[out]
    return new_h, new_c


def _orders() -> dict:
    """Every wrong reading of the four row blocks, named the way the learner wrote it."""
    named = {}
    for p in permutations("ifgo"):
        order = "".join(p)
        if order == "ifgo":
            continue
        phrase = f"the gate blocks are read in the order {','.join(order)} instead of PyTorch's i,f,g,o"
        if order == "figo":
            phrase += " (equivalently: i and f swapped in the cell update, c = i*c_prev + f*g)"
        named[phrase] = dict(order=order)
    return named


# Phrases complete "your output matches what you get if ...". Order matters where
# two mistakes give the same numbers: the first phrase that matches is shown.
STEP_VARIANTS = {
    **_orders(),
    "g uses sigmoid instead of tanh": dict(act="ssss"),
    "the input gate i uses tanh instead of sigmoid": dict(act="tsts"),
    "the forget gate f uses tanh instead of sigmoid": dict(act="stts"),
    "the output gate o uses tanh instead of sigmoid": dict(act="sstt"),
    "i, f and o use tanh, like g": dict(act="tttt"),
    "the gates have no nonlinearity at all": dict(act="----"),
    "h_t = o*c_t: the tanh on the cell state is missing (it should be h_t = o * tanh(c_t))": dict(out="o*c"),
    "h_t = tanh(o*c_t): the tanh is applied after the output gate instead of to c_t": dict(out="tanh(o*c)"),
    "h_t uses the old cell state c_prev instead of the new c_t": dict(out="o*tanh(c_prev)"),
    "the output gate is left out (h_t = tanh(c_t))": dict(out="tanh(c)"),
    "the cell update is multiplicative (c = f*c_prev*i*g) instead of additive (f*c_prev + i*g)":
        dict(cell="f*c*i*g"),
    "the forget gate is applied as (1 - f) (c = (1-f)*c_prev + i*g)": dict(cell="(1-f)*c+i*g"),
    "the input gate is replaced by (1 - f) (c = f*c_prev + (1-f)*g, a coupled gate)":
        dict(cell="f*c+(1-f)*g"),
    "the input gate is left out of the cell update (c = f*c_prev + g)": dict(cell="f*c+g"),
    "the forget gate is left out of the cell update (c = c_prev + i*g)": dict(cell="c+i*g"),
    "each gate's (H, H) block of W_hh is transposed (h_prev @ W_hh_k instead of h_prev @ W_hh_k.T)":
        dict(W_hh_blocks_T=True),
    "W_ih is transposed (x_t @ W_ih instead of x_t @ W_ih.T)": dict(W_ih_T=True),
    "b_hh is left out": dict(b_hh=False),
    "b_ih is left out": dict(b_ih=False),
    "both biases are left out": dict(b_ih=False, b_hh=False),
}
_PEEP = {"i": ("w_ci", "old"), "f": ("w_cf", "old"), "o": ("w_co", "new")}
PEEPHOLE_VARIANTS = {
    "the output gate peeks at the old cell state c_prev instead of the new c_t (it should add w_co * c_t)":
        dict(peep={**_PEEP, "o": ("w_co", "old")}),
    "the third peephole goes to the candidate g instead of the output gate o "
    "(peepholes belong to i, f and o only)": dict(peep={**_PEEP, "g": ("w_co", "old"), "o": None}),
    "the peephole weights of i and f are swapped": dict(peep={**_PEEP, "i": ("w_cf", "old"),
                                                              "f": ("w_ci", "old")}),
    "the peepholes are left out (a plain LSTM step)": dict(peep={}),
}


def _peep_kw(kw: dict) -> dict:
    """A peephole variant's keywords, with None entries (no peephole there) dropped."""
    peep = {k: v for k, v in kw.get("peep", _PEEP).items() if v is not None}
    return {**kw, "peep": peep}


def _step_variants(a: dict, x, h, c, peephole: bool) -> tuple:
    """(variants of h_t, variants of c_t) for one case: phrase -> tensor. A peephole
    step can have every plain-LSTM mistake too, so those are computed with peepholes."""
    hs, cs = {}, {}
    table = {**PEEPHOLE_VARIANTS, **STEP_VARIANTS} if peephole else STEP_VARIANTS
    for phrase, kw in table.items():
        if peephole:
            kw = _peep_kw(kw)
        hs[phrase], cs[phrase] = _variant(x, h, c, a, **kw)
    return hs, cs


def _check_step_like(fn, hidden: bool, exercise: str, plan: Plan, reference, peephole: bool) -> None:
    cases = build_cases(hidden, plan)
    for case in cases:
        result = call_learner(fn, case, exercise, hint_on_error=_ON_SHAPES)
        h_t, c_t = validate_items(result, case, exercise, ("h_t", "c_t"))
        B, H = case.sizes["B"], case.sizes["H"]
        hints = {(H,): "the batch axis is missing", (1, B, H): "drop the leading axis",
                 (B, 4 * H): "that is all four gates' pre-activations; split them into i, f, g, o"}
        # lstm_step's lesson text promises the inputs' dtype; the peephole step's leaves it open
        validate(h_t, case, exercise, "h_t", ("B", "H"), shape_hints=hints, same_dtype=not peephole)
        validate(c_t, case, exercise, "c_t", ("B", "H"), shape_hints=hints, same_dtype=not peephole)
        a = on_cpu64(case)
        ref_h, ref_c = reference(a)
        hs, cs = _step_variants(a, a["x_t"], a["h_prev"], a["c_prev"], peephole)
        swapped = "you return (c_t, h_t) instead of (h_t, c_t)"
        # c_t first: most mistakes show there, and a right c_t with a wrong h_t narrows it down.
        compare(c_t, ref_c, case, exercise, "c_t", {swapped: ref_h, **cs}, hint=_EQUATIONS)
        compare(h_t, ref_h, case, exercise, "h_t", {swapped: ref_c, **hs}, hint=_EQUATIONS)
    passed(exercise, cases, hidden)


# ----------------------------------------------------------------------------
# the checks

def check_lstm_step(lstm_step, hidden: bool = False) -> None:
    """lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh) -> (h_t, c_t), each (B, H),
    with the gate rows in PyTorch's order i, f, g, o, without torch's LSTM modules."""
    _check_step_like(lstm_step, hidden, "lstm_step", STEP_PLAN, _reference_step, peephole=False)


def check_peephole_lstm_step(peephole_lstm_step, hidden: bool = False) -> None:
    """peephole_lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co)
    -> (h_t, c_t): i and f peek at c_prev, o at the new c_t, elementwise (w_c* are (H,))."""
    _check_step_like(peephole_lstm_step, hidden, "peephole_lstm_step", PEEPHOLE_PLAN,
                     _reference_peephole, peephole=True)


def _forward_variant(a, carry_h=True, carry_c=True, **kw):
    """(outputs (B, T, H), h_T, c_T, all cell states (B, T, H)) of a forward with the
    named mistakes; with no keywords, the correct one."""
    h, c, outs, cells = a["h0"], a["c0"], [], []
    for t in range(a["x"].shape[1]):
        h, c = _variant(a["x"][:, t], h if carry_h else a["h0"], c if carry_c else a["c0"], a, **kw)
        if h is None:  # this mistake cannot run at these sizes
            return None, None, None, None
        outs.append(h)
        cells.append(c)
    return torch.stack(outs, dim=1), h, c, torch.stack(cells, dim=1)


def _forward_variants(a: dict, outputs: torch.Tensor) -> dict:
    """phrase -> (outputs, h_T, c_T) of that wrong forward."""
    v = {
        "the cell state is not carried: every step starts from c0 (h is carried)":
            _forward_variant(a, carry_c=False),
        "the hidden state is not carried: every step starts from h0 (c is carried)":
            _forward_variant(a, carry_h=False),
        "neither state is carried: every step starts from (h0, c0)":
            _forward_variant(a, carry_h=False, carry_c=False),
    }
    for phrase, kw in STEP_VARIANTS.items():
        v[phrase] = _forward_variant(a, **kw)
    return v


def check_lstm_forward(lstm_forward, hidden: bool = False) -> None:
    """lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh) -> (outputs (B, T, H), (h_T, c_T)),
    x batch-first (B, T, I); outputs[:, t] is h after reading x[:, t]."""
    cases = build_cases(hidden, FORWARD_PLAN)
    # a forward that calls the learner's lstm_step fails first for a wrong lstm_step
    with helper_first(lstm_forward, "lstm_forward", "lstm_step", check_lstm_step):
        for case in cases:
            _check_forward_case(lstm_forward, case)
    passed("lstm_forward", cases, hidden)


def _check_forward_case(lstm_forward, case) -> None:
    exercise = "lstm_forward"
    result = call_learner(lstm_forward, case, exercise, hint_on_error=_ON_SHAPES)
    outputs, state = validate_items(result, case, exercise, ("outputs", "(h_T, c_T)"), by_length={
        3: "three items. Return the last states as one pair, like nn.LSTM: "
           "`return outputs, (h_T, c_T)`."})
    h_T, c_T = validate_items(state, case, exercise, ("h_T", "c_T"),
                              what="as the second item the pair",
                              fix="return outputs, (h_T, c_T)")
    B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
    validate(outputs, case, exercise, "outputs", ("B", "T", "H"), shape_hints={
        (B, T + 1, H): "one state too many: outputs hold h_1 … h_T, not h_0",
        (B, T - 1, H): "one state too few: outputs hold all T states h_1 … h_T",
        (T, B, H): "this is time-first; the course is batch-first: outputs[:, t] is a state",
        (B, H): "that is one state; outputs stacks all T of them along dim 1",
    })
    layers = "nn.LSTM returns h_n and c_n with a leading layers axis; here they are just (B, H)"
    for what, t in (("h_T", h_T), ("c_T", c_T)):
        validate(t, case, exercise, what, ("B", "H"), shape_hints={(1, B, H): layers})
    a = on_cpu64(case)
    ref_out, ref_h, ref_c = _reference_forward(a)
    wrong = _forward_variants(a, ref_out)
    compare(outputs, ref_out, case, exercise, "outputs", {
        "outputs hold the cell states c_t instead of the hidden states h_t":
            _forward_variant(a)[3],
        "the outputs are shifted by one step: they hold h_0 … h_{T-1} instead of h_1 … h_T":
            torch.cat([a["h0"].unsqueeze(1), ref_out[:, :-1]], dim=1),
        **{p: w[0] for p, w in wrong.items()}}, hint=_EQUATIONS)
    compare(h_T, ref_h, case, exercise, "h_T", {
        "h_T is h0 (the initial state) instead of the last state": a["h0"],
        "h_T is the last cell state c_T: the pair is (h_T, c_T), h first": ref_c,
        "h_T is the state one step before the end (h_{T-1})": ref_out[:, -2] if T > 1 else None,
    })
    compare(c_T, ref_c, case, exercise, "c_T", {
        "c_T is c0 (the initial cell state) instead of the last one": a["c0"],
        "c_T is the last hidden state h_T: the pair is (h_T, c_T), c second": ref_h,
        **{p: w[2] for p, w in wrong.items()}})


