"""Checks for lesson 05 (the GRU): gru_step and count_parameters.

Shapes follow the course: x_t (B, I), h (B, H), and PyTorch's GRU layout:
W_ih (3H, I), W_hh (3H, H), b_ih (3H,), b_hh (3H,), gate rows stacked (r, z, n):

    r = sigmoid(x W_ir^T + b_ir + h W_hr^T + b_hr)
    z = sigmoid(x W_iz^T + b_iz + h W_hz^T + b_hz)
    n = tanh(x W_in^T + b_in + r * (h W_hn^T + b_hn))      # r AFTER the matmul
    h_t = (1 - z) * n + z * h

The reference is ``rnncourse.functional.gru_cell``; the known
wrong variants (the Cho et al. 2014 reset placement among them) are computed
here. The parameter counter is checked against ``torch.nn`` modules built on
the meta device (no memory, no initialisation cost) outside the learner's call.
"""
from __future__ import annotations

import itertools

import torch

from rnncourse.guard import FROM_SCRATCH, constructors, recurrent_module_classes
from rnncourse import functional as F
from rnncourse.kinds import GATES
from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, distinct_sizes, on_cpu64,
    on_shape_error, passed, randn, validate, validate_scalar,
)

_LAYOUT = ("W_ih is (3H, I) and W_hh is (3H, H), their rows stacked in the order r, z, n; "
           "split them with .chunk(3) (or rows [0:H], [H:2H], [2H:3H]) and the biases the "
           "same way. Each gate's terms are x_t @ W_i?.T and h_prev @ W_h?.T.")


# ----------------------------------------------------------------------------
# cases and the reference

def _step_args(gen, s):
    B, I, H = s["B"], s["I"], s["H"]
    # Random normal weights are non-symmetric; the scales keep the gates away
    # from saturation, where r and z are ~0 or ~1 and wrong variants look alike.
    return Drawn({"x_t": randn(gen, B, I), "h_prev": randn(gen, B, H, scale=0.8).tanh(),
                  "W_ih": randn(gen, 3 * H, I, scale=0.6), "W_hh": randn(gen, 3 * H, H, scale=0.6),
                  "b_ih": randn(gen, 3 * H, scale=0.5), "b_hh": randn(gen, 3 * H, scale=0.5)})


def _reference_step(a: dict) -> torch.Tensor:
    # rnncourse.functional's cell (float64, CPU), called outside the blocked region.
    return F.gru_cell(a["x_t"], a["h_prev"], a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"])  # (B, H)


# Sizes of 1 in one case (a batch of one, one feature, one unit); a meta-device run (a
# tensor made without device=); a gradient case: a GRU layer trains through its step.
STEP_PLAN = Plan("BIH", _step_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13), ones="BIH",
                 meta=True, gradient=_reference_step)


# ----------------------------------------------------------------------------
# known wrong variants

def gru_variant(x, h, W_ih, W_hh, b_ih, b_hh, *, order="rzn", cho=False, z_swapped=False,
                b_hn_outside=False, blocks_untransposed=False, use_b_ih=True, use_b_hh=True,
                n_act=torch.tanh, return_n=False):
    """One GRU step, correct with the defaults; each flag is one known mistake.

    ``order="zrn"`` reads the first row block as z and the second as r; ``cho``
    applies r before the matmul, W_hn (r * h) + b_hn; ``z_swapped`` gives
    h = z * n + (1 - z) * h; ``b_hn_outside`` gives r * (W_hn h) + b_hn;
    ``blocks_untransposed`` multiplies h by each gate's (H, H) block without .T.
    """
    i_a, i_b, i_n = W_ih.chunk(3)
    h_a, h_b, h_n = W_hh.chunk(3)
    bi = b_ih.chunk(3) if use_b_ih else (0, 0, 0)
    bh = b_hh.chunk(3) if use_b_hh else (0, 0, 0)
    hm = (lambda W: h @ W) if blocks_untransposed else (lambda W: h @ W.T)
    a = torch.sigmoid(x @ i_a.T + bi[0] + hm(h_a) + bh[0])  # first block: r (z if order "zrn")
    b = torch.sigmoid(x @ i_b.T + bi[1] + hm(h_b) + bh[1])
    r, z = (a, b) if order == "rzn" else (b, a)
    if cho:
        rec = ((r * h) @ h_n) if blocks_untransposed else (r * h) @ h_n.T
        n = n_act(x @ i_n.T + bi[2] + rec + bh[2])
    elif b_hn_outside:
        n = n_act(x @ i_n.T + bi[2] + r * hm(h_n) + bh[2])
    else:
        n = n_act(x @ i_n.T + bi[2] + r * (hm(h_n) + bh[2]))
    if return_n:
        return n
    return z * n + (1 - z) * h if z_swapped else (1 - z) * n + z * h


# Mistakes that can combine, with the phrase that names each one.
_MISTAKES = {
    "cho": "the reset gate is applied before the recurrent matmul, as in Cho et al. (2014): "
           "W_hn (r * h) + b_hn instead of PyTorch's r * (W_hn h + b_hn)",
    "order": "the row blocks are read in the order (z, r, n) instead of PyTorch's (r, z, n)",
    "z_swapped": "z's role is swapped: h_t = z * n + (1 - z) * h_prev instead of "
                 "(1 - z) * n + z * h_prev",
    "b_hn_outside": "b_hn is outside the reset product: r * (W_hn h) + b_hn instead of "
                    "r * (W_hn h + b_hn)",
    "blocks_untransposed": "the (H, H) blocks of W_hh are not transposed (h_prev @ W_hr "
                           "instead of h_prev @ W_hr.T)",
}
_SINGLE = {
    "b_ih is left out": dict(use_b_ih=False),
    "b_hh is left out": dict(use_b_hh=False),
    "both biases are left out": dict(use_b_ih=False, use_b_hh=False),
    "n uses sigmoid instead of tanh": dict(n_act=torch.sigmoid),
    "n has no tanh": dict(n_act=lambda v: v),
}


def _variant_flags() -> list:
    """Every combination of the mistakes above, fewest first (Cho with
    b_hn_outside is skipped: in Cho's placement b_hn is outside already)."""
    combos = []
    names = list(_MISTAKES)
    for k in range(1, len(names) + 1):
        for chosen in itertools.combinations(names, k):
            if "cho" in chosen and "b_hn_outside" in chosen:
                continue
            combos.append(chosen)
    return combos


def step_variants(a: dict) -> dict:
    """phrase -> output of that wrong computation, for the case's float64 args."""
    args = (a["x_t"], a["h_prev"], a["W_ih"], a["W_hh"], a["b_ih"], a["b_hh"])
    out = {}
    for chosen in _variant_flags():
        kw = {m: True for m in chosen if m != "order"}
        if "order" in chosen:
            kw["order"] = "zrn"
        phrase = "; and ".join(_MISTAKES[m] for m in chosen)
        out[phrase] = gru_variant(*args, **kw)
    for phrase, kw in _SINGLE.items():
        out[phrase] = gru_variant(*args, **kw)
    out["you return the candidate n instead of the new state h_t"] = gru_variant(*args, return_n=True)
    out["h_prev is returned unchanged"] = a["h_prev"]
    return out


def check_gru_step(gru_step, hidden: bool = False) -> None:
    """gru_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh) -> h_t (B, H), PyTorch's GRU
    (rows r, z, n; r after the recurrent matmul), without torch's recurrent modules."""
    cases = build_cases(hidden, STEP_PLAN)
    for case in cases:
        out = call_learner(gru_step, case, "gru_step", hint_on_error=on_shape_error(_LAYOUT))
        B, H = case.sizes["B"], case.sizes["H"]
        # the lesson promises the inputs' dtype: float32 in, float64 out is wrong too
        validate(out, case, "gru_step", "h_t", ("B", "H"), same_dtype=True, shape_hints={
            (H,): "the batch axis is missing",
            (1, B, H): "drop the leading axis",
            (B, 3 * H): "that is three gates stacked; return the new state h_t",
            (B, 2 * H): "that is two gates stacked; return the new state h_t",
        })
        a = on_cpu64(case)
        compare(out, _reference_step(a), case, "gru_step", "h_t", step_variants(a), hint=(
            "r = sigmoid(x_r + h_r), z = sigmoid(x_z + h_z), n = tanh(x_n + r * h_n) with h_n = "
            "h_prev @ W_hn.T + b_hn, and h_t = (1 - z) * n + z * h_prev."))
    passed("gru_step", cases, hidden)


# ----------------------------------------------------------------------------
# count_parameters(kind, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True)

# Row blocks stacked in each weight matrix: the number of gates of kinds.GATES.
BLOCKS = {kind: len(gates) for kind, gates in GATES.items()}
# The course's facts (docs/course.md), as (kind, I, H, num_layers, bidirectional) -> count.
FACTS = [("RNN", 10, 20, 1, False, 640), ("GRU", 10, 20, 1, False, 1920),
         ("LSTM", 10, 20, 1, False, 2560), ("LSTM", 10, 20, 1, True, 5120),
         ("LSTM", 10, 20, 2, False, 5920), ("LSTM", 10, 20, 2, True, 15040)]


def torch_count(kind: str, I: int, H: int, L: int = 1, bi: bool = False, bias: bool = True) -> int:
    """sum(p.numel()) of the torch.nn module, built on the meta device (no memory)."""
    m = getattr(torch.nn, kind)(I, H, num_layers=L, bidirectional=bi, bias=bias, device="meta")
    return sum(p.numel() for p in m.parameters())


def count_variant(kind, I, H, L=1, bi=False, bias=True, *, gates=BLOCKS, deep_input="DH",
                  n_bias=2, ignore_bias_flag=False, ignore_directions=False, ignore_layers=False):
    """The count with the defaults; each keyword is one known mistake."""
    G = gates[kind] * H
    D = 1 if (ignore_directions or not bi) else 2
    L = 1 if ignore_layers else L
    biases = n_bias if (bias or ignore_bias_flag) else 0
    total = 0
    for layer in range(L):
        inputs = I if layer == 0 else {"DH": D * H, "H": H, "I": I}[deep_input]
        total += D * (G * inputs + G * H + biases * G)
    return total


_COUNT_MISTAKES = {
    "gates": {
        "the gate multiplier is wrong: every kind counted as 1 block (an LSTM has 4 row "
        "blocks i, f, g, o and a GRU 3, r, z, n)": {"RNN": 1, "LSTM": 1, "GRU": 1},
        "the gate multiplier is wrong: LSTM counted with 3 blocks and GRU with 4 (LSTM 4, GRU 3)":
            {"RNN": 1, "LSTM": 3, "GRU": 4},
        "the gate multiplier is wrong: GRU counted with 2 blocks (r, z), but the candidate n "
        "has its own rows too (3 in all)": {"RNN": 1, "LSTM": 4, "GRU": 2},
        "the gate multiplier is wrong: LSTM counted with 3 gates (i, f, o), but the candidate g "
        "has its own rows too (4 in all)": {"RNN": 1, "LSTM": 3, "GRU": 3},
    },
    "deep_input": {
        "layers after the first take input_size inputs, but they read the layer below: "
        "hidden_size × directions": "I",
        "layers after the first take hidden_size inputs, but a bidirectional layer below "
        "hands up both directions: 2 × hidden_size": "H",
    },
    "n_bias": {"one bias vector per layer and direction is counted; PyTorch keeps two "
               "(bias_ih and bias_hh)": 1},
    "ignore_bias_flag": {"biases are counted even when bias=False": True},
    "ignore_directions": {"bidirectional=True is ignored (it doubles every layer)": True},
    "ignore_layers": {"num_layers is ignored": True},
}


def _count_variants() -> list:
    """(phrase, keywords) for every combination of up to three mistakes, fewest first."""
    options = [[(p, {key: v}) for p, v in d.items()] for key, d in _COUNT_MISTAKES.items()]
    combos = []
    for k in (1, 2, 3):
        for groups in itertools.combinations(options, k):
            for picked in itertools.product(*groups):
                combos.append(("; and ".join(p for p, _ in picked),
                               {key: v for _, kw in picked for key, v in kw.items()}))
    return combos


def _config_label(cfg) -> str:
    kind, I, H, L, bi, bias = cfg
    return (f"{kind}(input_size={I}, hidden_size={H}, num_layers={L}, "
            f"bidirectional={bi}, bias={bias})")


def _config(cfg, args=None) -> Drawn:
    """A configuration as a case: the learner's positional arguments (``args``,
    default all six), the full config in the context, the call as the title."""
    return Drawn(dict(enumerate(args or cfg)), context={"config": cfg}, title=_config_label(cfg))


def _fact(kind, I, H, L, bi, n) -> Drawn:
    # the facts leave trailing defaults out, so a counter without defaults fails on them
    cfg = (kind, I, H, L, bi, True)
    args = cfg
    while len(args) > 3 and args[-1] == (1, False, True)[len(args) - 4]:
        args = args[:-1]
    return _config(cfg, args)


def _random_configs(gen: torch.Generator, _sizes, n: int) -> list:
    """``n`` seeded random configs, with sizes pairwise different so no mistake
    cancels by coincidence."""
    configs = []
    for i in range(n):
        kind = ("RNN", "LSTM", "GRU")[i % 3]
        sizes = distinct_sizes(gen, "IH", low=1, high=70)
        L = int(torch.randint(1, 5, (1,), generator=gen))
        bi = bool(i // 3 % 2)
        bias = i % 4 != 3
        configs.append(_config((kind, sizes["I"], sizes["H"], L, bi, bias)))
    return configs


# Visible: the facts, then 24 configs from seed 5; hidden: 60 configs from seed 99.
# One generator draws every config of a plan; the variant is how many.
COUNT_PLANS = {
    False: Plan("", _random_configs, visible_seeds=(5,), integer=True, variants=(24,),
                fixed=tuple(_fact(*f) for f in FACTS), gpu=False),
    True: Plan("", _random_configs, hidden_seeds=(99,), integer=True, variants=(60,), gpu=False),
}
# Building a recurrent module (to read the count off it) is refused while it runs.
_MODULES = constructors(
    "recurrent module constructors", recurrent_module_classes,
    lambda cls: (f"your count_parameters built a {cls.__name__} module to count "
                 "its parameters. Derive the count from the weight shapes instead "
                 "(weight_ih, weight_hh, bias_ih, bias_hh for every layer and "
                 "direction); recurrent modules are switched off while it is checked."))


def check_count_parameters(count_parameters, hidden: bool = False) -> None:
    """count_parameters(kind, input_size, hidden_size, num_layers=1, bidirectional=False,
    bias=True) equals sum(p.numel() for p in torch.nn.<kind>(...).parameters())."""
    cases = build_cases(hidden, COUNT_PLANS[hidden])
    configs = [c.context["config"] for c in cases]
    got, wrong = [], []
    for i, case in enumerate(cases):
        out = call_learner(count_parameters, case, "count_parameters", blocks=(*FROM_SCRATCH, _MODULES),
                           hint_on_error="kind is 'RNN', 'LSTM' or 'GRU'.")
        # the lesson asks for an int: 640.0 is not one (no meta-device run: no tensors here)
        got.append(validate_scalar(out, case, "count_parameters", "the count", integer=True, exact_int=True))
        if got[-1] != torch_count(*configs[i]):
            wrong.append(i)
    if wrong:
        first = cases[wrong[0]]
        for phrase, kw in _count_variants():
            if all(count_variant(*cfg, **kw) == g for cfg, g in zip(configs, got)):
                raise CheckFailed(f"count_parameters is wrong for {len(wrong)} of {len(cases)} "
                                  f"configurations, e.g. {first.label}. "
                                  f"Your counts match what you get if {phrase}.")
        side = "high" if got[wrong[0]] > torch_count(*configs[wrong[0]]) else "low"
        raise CheckFailed(f"count_parameters is wrong for {len(wrong)} of {len(cases)} "
                          f"configurations; the first is {first.label}: "
                          f"your count, {got[wrong[0]]}, is too {side}.\nHint: every layer and "
                          "direction has weight_ih (G·H, inputs), weight_hh (G·H, H) and, with "
                          "bias, two (G·H,) vectors; G = 1, 4, 3 for RNN, LSTM, GRU.")
    passed("count_parameters", cases, hidden)
