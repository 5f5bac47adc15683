"""The lesson-05 checks accept correct code however it is written and reject the
typical wrong variants by name: gru_step and count_parameters."""
import sys
import warnings

import pytest
import torch

import rnncourse
from rnncourse.checks.core import CheckFailed

from _reject import assert_rejected
from rnncourse.guard import handed_to_learner
from classroom.wrong import shared
from rnncourse.checks.gru import (
    FACTS, check_count_parameters, check_gru_step, count_variant, gru_variant, torch_count,
)

F = torch.nn.functional


# ---------------------------------------------------------------- gru_step: correct code

def step_chunked(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return (1 - z) * n + z * h_prev


def step_per_gate(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    # six weight blocks by slicing, matrix-vector products one sequence at a time
    H = h_prev.shape[1]
    W = {g: (W_ih[k * H:(k + 1) * H], W_hh[k * H:(k + 1) * H], b_ih[k * H:(k + 1) * H],
             b_hh[k * H:(k + 1) * H]) for k, g in enumerate("rzn")}
    rows = []
    for x, h in zip(x_t, h_prev):
        r = torch.sigmoid(W["r"][0] @ x + W["r"][2] + W["r"][1] @ h + W["r"][3])
        z = torch.sigmoid(W["z"][0] @ x + W["z"][2] + W["z"][1] @ h + W["z"][3])
        n = torch.tanh(W["n"][0] @ x + W["n"][2] + r * (W["n"][1] @ h + W["n"][3]))
        rows.append(torch.lerp(n, h, z))
    return torch.stack(rows)


def step_upcast(*args):
    return step_chunked(*[a.double() for a in args]).to(args[0].dtype)  # the inputs' dtype, as asked


def step_linear(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    gx, gh = F.linear(x_t, W_ih, b_ih), F.linear(h_prev, W_hh, b_hh)
    H = h_prev.shape[1]
    r = torch.sigmoid(gx[:, :H] + gh[:, :H])
    z = torch.sigmoid(gx[:, H:2 * H] + gh[:, H:2 * H])
    n = torch.tanh(gx[:, 2 * H:] + r * gh[:, 2 * H:])
    return h_prev + (1 - z) * (n - h_prev)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [step_chunked, step_per_gate, step_upcast, step_linear])
def test_gru_step_accepts_correct_code(fn, hidden):
    check_gru_step(fn, hidden=hidden)


def test_reference_matches_torch_gru_cell():
    # the check's reference is rnncourse.GRUCell; torch.nn.GRUCell agrees with it
    gen = torch.Generator().manual_seed(3)
    B, I, H = 4, 3, 5
    cell = torch.nn.GRUCell(I, H, dtype=torch.float64)
    x, h = torch.randn(B, I, generator=gen, dtype=torch.float64), torch.randn(B, H, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        want = cell(x, h)
    got = step_chunked(x, h, cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)
    torch.testing.assert_close(got.detach(), want, atol=1e-12, rtol=0)


def test_gru_step_right_answer_is_quiet(capfd):
    def noisy(*args):
        warnings.warn("a harmless warning")
        print("debug", file=sys.stderr)
        return step_chunked(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_gru_step(noisy, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- gru_step: wrong code

def _variant(**kw):
    # a learner who wrote this mistake; the check's own helper computes it, unblocked
    return lambda *a: handed_to_learner(gru_variant)(*a, **kw)


def _nn_cell(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.GRUCell(W_ih.shape[1], W_hh.shape[1], dtype=x_t.dtype)
    cell.load_state_dict({"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh})
    return cell(x_t, h_prev)


def _reference(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    cell = rnncourse.GRUCell(W_ih.shape[1], W_hh.shape[1], dtype=x_t.dtype)
    cell.load_state_dict({"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh})
    return cell(x_t, h_prev)


def _functional(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    from rnncourse.functional import gru_cell
    return gru_cell(x_t, h_prev, W_ih, W_hh, b_ih, b_hh)


def _aten(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return torch.gru_cell(x_t, h_prev, W_ih, W_hh, b_ih, b_hh)


def _W_ih_blocks_untransposed(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    W_ir, W_iz, W_in = W_ih.chunk(3)
    return torch.sigmoid(x_t @ W_ir + h_prev)  # (B, I) @ (H, I): a shape error


WRONG_STEPS = {
    "Cho placement": (_variant(cho=True), "as in Cho et al. (2014)"),
    **shared("gru_step"),  # cho_reset (per gate, as the paper writes it), z_swapped
    "gate order z, r, n": (_variant(order="zrn"), "in the order (z, r, n)"),
    "z's role swapped": (_variant(z_swapped=True), "z's role is swapped"),
    "b_hn outside r": (_variant(b_hn_outside=True), "b_hn is outside the reset product"),
    "W_hh blocks untransposed": (_variant(blocks_untransposed=True), "blocks of W_hh are not transposed"),
    "Cho and z swapped": (_variant(cho=True, z_swapped=True), "r * (W_hn h + b_hn); and z's role is swapped"),
    "no b_ih": (_variant(use_b_ih=False), "b_ih is left out"),
    "no b_hh": (_variant(use_b_hh=False), "b_hh is left out"),
    "no biases": (_variant(use_b_ih=False, use_b_hh=False), "both biases are left out"),
    "sigmoid candidate": (_variant(n_act=torch.sigmoid), "n uses sigmoid"),
    "returns n": (_variant(return_n=True), "return the candidate n"),
    "returns h_prev": (lambda x, h, *w: h.clone(), "h_prev is returned unchanged"),
    "W_ih blocks untransposed": (_W_ih_blocks_untransposed, "W_ih is (3H, I)"),
    "stacked gates": (lambda x, h, W, U, b, c: x @ W.T + b + h @ U.T + c, "three gates stacked"),
    "nn.GRUCell": (_nn_cell, "fused recurrent kernel 'gru_cell'"),
    "torch.gru_cell": (_aten, "fused recurrent kernel 'gru_cell'"),
    "rnncourse.GRUCell": (_reference, "rnncourse.GRUCell was called"),
    "rnncourse.functional.gru_cell": (_functional, "gru_cell (rnncourse/functional.py) was called"),
    "float32 for float64": (lambda *a: step_chunked(*a).float(), "precision was lost"),
    "NaN": (lambda *a: step_chunked(*a) * float("nan"), "contains NaN"),
    "slightly off": (lambda x, h, W, U, b, c: step_chunked(x, h, W, U, 1.001 * b, c), "largest error"),
}


@pytest.mark.parametrize("name", list(WRONG_STEPS))
def test_gru_step_rejects_wrong_code(name):
    fn, diagnosis = WRONG_STEPS[name]
    assert_rejected(check_gru_step, fn, diagnosis, "gru_step", first_case=True)


@pytest.mark.parametrize("name", ["Cho placement", "gate order z, r, n", "z's role swapped",
                                  "b_hn outside r", "no b_hh"])
def test_visible_tests_name_the_mistake_too(name):
    fn, diagnosis = WRONG_STEPS[name]
    with pytest.raises(CheckFailed, match=r"case 1 of \d+ .*float32") as info:
        check_gru_step(fn)
    assert diagnosis in str(info.value)


def test_cho_placement_differs_from_pytorch_by_far_more_than_rounding():
    gen = torch.Generator().manual_seed(0)
    B, I, H = 3, 4, 5
    a = [torch.randn(*s, generator=gen, dtype=torch.float64) for s in
         ((B, I), (B, H), (3 * H, I), (3 * H, H), (3 * H,), (3 * H,))]
    gap = (gru_variant(*a, cho=True) - gru_variant(*a)).abs().max().item()
    assert gap > 1e-2


# ---------------------------------------------------------------- count_parameters

def count_formula(kind, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True):
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind] * hidden_size
    D = 2 if bidirectional else 1
    total, inputs = 0, input_size
    for _ in range(num_layers):
        total += D * (G * inputs + G * hidden_size + (2 * G if bias else 0))
        inputs = D * hidden_size
    return total


def count_by_shapes(kind, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True):
    # lists every parameter's shape, as torch.nn names them, and multiplies out
    import math
    G = {"rnn": 1, "lstm": 4, "gru": 3}[kind.lower()] * hidden_size
    shapes = []
    for layer in range(num_layers):
        for _ in range(2 if bidirectional else 1):
            inputs = input_size if layer == 0 else hidden_size * (2 if bidirectional else 1)
            shapes += [(G, inputs), (G, hidden_size)] + ([(G,), (G,)] if bias else [])
    return torch.tensor(sum(math.prod(s) for s in shapes))  # a 0-d int tensor is fine too


def test_formula_is_torch_on_the_facts_and_many_configs():
    for kind, I, H, L, bi, n in FACTS:
        assert torch_count(kind, I, H, L, bi) == n == count_variant(kind, I, H, L, bi)
    gen = torch.Generator().manual_seed(1)
    for _ in range(200):
        kind = ("RNN", "LSTM", "GRU")[int(torch.randint(3, (1,), generator=gen))]
        I, H, L = (int(v) for v in torch.randint(1, 40, (3,), generator=gen))
        L = L % 4 + 1
        bi, bias = (bool(v) for v in torch.randint(2, (2,), generator=gen))
        assert torch_count(kind, I, H, L, bi, bias) == count_formula(kind, I, H, L, bi, bias)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [count_formula, count_by_shapes])
def test_count_parameters_accepts_correct_code(fn, hidden):
    check_count_parameters(fn, hidden=hidden)


def _mistake(**kw):
    return lambda kind, I, H, L=1, bi=False, bias=True: handed_to_learner(count_variant)(kind, I, H, L, bi, bias, **kw)


def _builds_reference(kind, I, H, L=1, bi=False, bias=True):
    m = getattr(rnncourse, kind)(I, H, num_layers=L, bidirectional=bi, bias=bias)
    return sum(p.numel() for p in m.parameters())


def _builds_cells(kind, I, H, L=1, bi=False, bias=True):
    return sum(p.numel() for p in getattr(torch.nn, kind + "Cell")(I, H, bias=bias).parameters())


WRONG_COUNTS = {
    "deeper layers take input_size": (_mistake(deep_input="I"), "layers after the first take input_size"),
    "deeper layers take hidden_size": (_mistake(deep_input="H"), "layers after the first take hidden_size"),
    "one bias vector": (_mistake(n_bias=1), "one bias vector per layer"),
    "gate multiplier 1": (_mistake(gates={"RNN": 1, "LSTM": 1, "GRU": 1}), "every kind counted as 1 block"),
    "LSTM/GRU multipliers swapped": (_mistake(gates={"RNN": 1, "LSTM": 3, "GRU": 4}), "LSTM counted with 3 blocks and GRU with 4"),
    "GRU with 2 blocks": (_mistake(gates={"RNN": 1, "LSTM": 4, "GRU": 2}), "GRU counted with 2 blocks"),
    "bias flag ignored": (_mistake(ignore_bias_flag=True), "even when bias=False"),
    "directions ignored": (_mistake(ignore_directions=True), "bidirectional=True is ignored"),
    "layers ignored": (_mistake(ignore_layers=True), "num_layers is ignored"),
    **shared("count_parameters"),  # counts_a_module (torch.nn), deep_layers_read_input
    "builds rnncourse.LSTM": (_builds_reference, "rnncourse.RNN was called"),
    "builds a cell": (_builds_cells, "built a RNNCell module"),
    "off by one": (lambda *a: count_formula(*a) + 1, "is too high"),
    "returns a string": (lambda *a: str(count_formula(*a)), "should be an int"),
    "returns a fraction": (lambda *a: count_formula(*a) / 3, "should be an int"),
    "lower-case kinds only": (lambda kind, *a: count_formula(kind.lower(), *a), "raised KeyError"),
}


@pytest.mark.parametrize("name", list(WRONG_COUNTS))
def test_count_parameters_rejects_wrong_code(name):
    fn, diagnosis = WRONG_COUNTS[name]
    assert_rejected(check_count_parameters, fn, diagnosis)


def test_visible_count_check_uses_the_defaults():
    # a counter without defaults fails on the facts, which are called with three arguments
    def no_defaults(kind, input_size, hidden_size, num_layers, bidirectional, bias):
        return count_formula(kind, input_size, hidden_size, num_layers, bidirectional, bias)
    with pytest.raises(CheckFailed, match="raised TypeError"):
        check_count_parameters(no_defaults)


def test_modules_work_again_after_the_check():
    with pytest.raises(CheckFailed):
        check_count_parameters(WRONG_COUNTS["counts_a_module"][0])
    assert torch_count("GRU", 10, 20) == 1920
    assert sum(p.numel() for p in torch.nn.LSTM(10, 20).parameters()) == 2560
    assert sum(p.numel() for p in rnncourse.GRU(10, 20).parameters()) == 1920
