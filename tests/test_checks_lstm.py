"""The lesson-04 checks accept correct code however it is written and reject the
typical wrong variants of an LSTM with the right diagnosis."""
import sys
import warnings

import pytest
import torch
import torch.nn.functional as F

import rnncourse
from rnncourse.checks.core import CheckFailed

from _reject import assert_rejected
from classroom.wrong import shared
from rnncourse.checks.lstm import (
    PEEPHOLE_VARIANTS, STEP_VARIANTS, check_lstm_forward, check_lstm_step, check_peephole_lstm_step,
)


# ---------------------------------------------------------------- correct code

def step_chunked(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    z = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh  # (B, 4H)
    i, f, g, o = z.chunk(4, dim=1)
    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def step_per_gate(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    # one F.linear per gate, weights sliced by rows
    H = h_prev.shape[1]
    pre = [F.linear(x_t, W_ih[k * H:(k + 1) * H], b_ih[k * H:(k + 1) * H])
           + F.linear(h_prev, W_hh[k * H:(k + 1) * H], b_hh[k * H:(k + 1) * H]) for k in range(4)]
    i, f, o = (1 / (1 + torch.exp(-pre[k])) for k in (0, 1, 3))
    g = 2 * torch.sigmoid(2 * pre[2]) - 1  # tanh written another way
    c = torch.addcmul(f * c_prev, i, g)
    return o * torch.tanh(c), c


def step_per_row_upcast(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    # one sequence at a time, weights on the left, in float64 whatever comes in, and
    # returned in the inputs' dtype as the lesson asks
    W_ih, W_hh, b_ih, b_hh = (w.double() for w in (W_ih, W_hh, b_ih, b_hh))
    hs, cs = [], []
    for x, h, c in zip(x_t.double(), h_prev.double(), c_prev.double()):
        i, f, g, o = (W_ih @ x + b_ih + W_hh @ h + b_hh).chunk(4)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        hs.append(o.sigmoid() * c.tanh())
        cs.append(c)
    return torch.stack(hs).to(x_t.dtype), torch.stack(cs).to(x_t.dtype)


def forward_looped(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        h, c = step_chunked(x[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), (h, c)


def forward_preallocated(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    B, T, _ = x.shape
    H = h0.shape[1]
    gx = torch.einsum("bti,gi->btg", x, W_ih) + b_ih + b_hh  # all input projections at once
    outputs = x.new_empty(B, T, H)
    h, c = h0, c0
    for t in range(T):
        i, f, g, o = (gx[:, t] + h @ W_hh.T).split(H, dim=1)
        c = f.sigmoid() * c + i.sigmoid() * g.tanh()
        h = o.sigmoid() * c.tanh()
        outputs[:, t] = h
    return outputs, [outputs[:, -1], c]  # a list is a pair too


def peephole_chunked(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    i, f, g, o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    i = torch.sigmoid(i + w_ci * c_prev)
    f = torch.sigmoid(f + w_cf * c_prev)
    c = f * c_prev + i * torch.tanh(g)
    o = torch.sigmoid(o + w_co * c)
    return o * torch.tanh(c), c


def peephole_diag(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    # peepholes as diagonal matrices, the way papers write them
    H = h_prev.shape[1]
    z = F.linear(x_t, W_ih, b_ih) + F.linear(h_prev, W_hh, b_hh)
    i = torch.sigmoid(z[:, :H] + c_prev @ torch.diag(w_ci))
    f = torch.sigmoid(z[:, H:2 * H] + c_prev @ torch.diag(w_cf))
    c = f * c_prev + i * torch.tanh(z[:, 2 * H:3 * H])
    o = torch.sigmoid(z[:, 3 * H:] + c @ torch.diag(w_co))
    return o * torch.tanh(c), c


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [step_chunked, step_per_gate, step_per_row_upcast])
def test_lstm_step_accepts_correct_code(fn, hidden):
    check_lstm_step(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [forward_looped, forward_preallocated])
def test_lstm_forward_accepts_correct_code(fn, hidden):
    check_lstm_forward(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [peephole_chunked, peephole_diag])
def test_peephole_accepts_correct_code(fn, hidden):
    check_peephole_lstm_step(fn, hidden=hidden)


def test_visible_cases_cover_float32_and_float64(capsys):
    check_lstm_step(step_chunked)
    assert "float32/cpu, float64/cpu" in capsys.readouterr().out


def test_right_answer_writes_nothing_to_stderr(capfd):
    def noisy(*args):
        warnings.warn("a harmless warning from the learner's code")
        print("debugging output on stderr", file=sys.stderr)
        return step_chunked(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_lstm_step(noisy, hidden=True)
        check_lstm_forward(forward_looped, hidden=True)
        check_peephole_lstm_step(peephole_chunked, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- wrong code

def make_step(order="ifgo", acts=("s", "s", "t", "s"), cell="f*c+i*g", out="o*tanh(c)",
              W_hh_T=False, b_ih=True, b_hh=True):
    """A learner's step with one mistake, written independently of the check's _variant."""
    fn = {"s": torch.sigmoid, "t": torch.tanh}

    def step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih_, b_hh_):
        H = h_prev.shape[1]
        blocks = W_hh.split(H) if W_hh_T else None
        rec = torch.cat([h_prev @ blk for blk in blocks], dim=1) if W_hh_T else h_prev @ W_hh.T
        z = x_t @ W_ih.T + rec + (b_ih_ if b_ih else 0) + (b_hh_ if b_hh else 0)
        gates = dict(zip(order, z.chunk(4, dim=1)))
        i, f, g, o = (fn[a](gates[k]) for a, k in zip(acts, "ifgo"))
        c = {"f*c+i*g": f * c_prev + i * g, "i*c+f*g": i * c_prev + f * g,
             "f*c*i*g": f * c_prev * i * g}[cell]
        h = {"o*tanh(c)": o * torch.tanh(c), "o*c": o * c, "o*tanh(c_prev)": o * torch.tanh(c_prev)}[out]
        return h, c
    return step


def _reference_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    cell = rnncourse.LSTMCell(W_ih.shape[1], h_prev.shape[1], dtype=x_t.dtype)
    cell.load_state_dict({"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh})
    return cell(x_t, (h_prev, c_prev))


def _raise(*args):
    raise ValueError("something broke")


WRONG_STEPS = {
    **shared("lstm_step"),  # gate_order_ifog, uses_library (torch.nn.LSTMCell)
    "order f,i,g,o": (make_step(order="figo"), "order f,i,g,o"),
    "order o,i,f,g": (make_step(order="oifg"), "order o,i,f,g"),
    "f and i swapped in c": (make_step(cell="i*c+f*g"), "i and f swapped in the cell update"),
    "multiplicative c": (make_step(cell="f*c*i*g"), "the cell update is multiplicative"),
    "sigmoid on g": (make_step(acts="ssss"), "g uses sigmoid instead of tanh"),
    "tanh on f": (make_step(acts="stts"), "the forget gate f uses tanh"),
    "tanh on o": (make_step(acts="sstt"), "the output gate o uses tanh"),
    "h = o*c": (make_step(out="o*c"), "the tanh on the cell state is missing"),
    "h from old c": (make_step(out="o*tanh(c_prev)"), "h_t uses the old cell state"),
    "W_hh blocks transposed": (make_step(W_hh_T=True), "block of W_hh is transposed"),
    "no b_hh": (make_step(b_hh=False), "b_hh is left out"),
    "no b_ih": (make_step(b_ih=False), "b_ih is left out"),
    "no biases": (make_step(b_ih=False, b_hh=False), "both biases are left out"),
    "returns (c, h)": (lambda *a: step_chunked(*a)[::-1], "you return (c_t, h_t)"),
    "returns h only": (lambda *a: step_chunked(*a)[0], "expected a pair (h_t, c_t), got a Tensor"),
    "returns 4H gates": (lambda x, h, c, Wi, Wh, bi, bh: (x @ Wi.T + h @ Wh.T, c), "all four gates"),
    "W_hh not transposed at all": (lambda x, h, c, Wi, Wh, bi, bh: step_chunked(x, h, c, Wi, Wh.T.T.T, bi, bh),
                                   "W_ih is (4H, I) and W_hh is (4H, H)"),
    "NaN": (lambda *a: tuple(t * float("nan") for t in step_chunked(*a)), "contains NaN"),
    "raises": (_raise, "raised ValueError: something broke"),
    "rnncourse.LSTMCell": (_reference_step, "rnncourse.LSTMCell was called"),
    "float32 for float64 input": (lambda *a: tuple(t.float() for t in step_chunked(*a)), "precision was lost"),
}


@pytest.mark.parametrize("name", list(WRONG_STEPS))
def test_lstm_step_rejects_wrong_code(name):
    fn, diagnosis = WRONG_STEPS[name]
    assert_rejected(check_lstm_step, fn, diagnosis, "lstm_step", first_case=True)


def test_every_named_gate_order_is_distinct():
    # 23 wrong orders and the other variants must give different numbers, so the
    # message names the right one: each is caught as itself.
    for order in ("ifog", "fiog", "gifo", "oifg", "ofgi"):
        with pytest.raises(CheckFailed, match=f"order {','.join(order)} instead"):
            check_lstm_step(make_step(order=order), hidden=True)


def _forward_with(step, carry_h=True, carry_c=True):
    def forward(x, h0, c0, *w):
        h, c, outs = h0, c0, []
        for t in range(x.shape[1]):
            h, c = step(x[:, t], h if carry_h else h0, c if carry_c else c0, *w)
            outs.append(h)
        return torch.stack(outs, dim=1), (h, c)
    return forward


def _nn_lstm(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    lstm = torch.nn.LSTM(W_ih.shape[1], h0.shape[1], batch_first=True, dtype=x.dtype)
    lstm.load_state_dict({"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    out, (h_n, c_n) = lstm(x, (h0[None], c0[None]))
    return out, (h_n[0], c_n[0])


def _cells_as_outputs(x, h0, c0, *w):
    h, c, cells = h0, c0, []
    for t in range(x.shape[1]):
        h, c = step_chunked(x[:, t], h, c, *w)
        cells.append(c)
    return torch.stack(cells, dim=1), (h, c)


WRONG_FORWARDS = {
    **shared("lstm_forward"),  # cell_not_carried, uses_library (rnncourse.LSTM)
    "h not carried": (_forward_with(step_chunked, carry_h=False), "the hidden state is not carried"),
    "nothing carried": (_forward_with(step_chunked, False, False), "neither state is carried"),
    "outputs are c": (_cells_as_outputs, "outputs hold the cell states"),
    "gate order i,f,o,g": (_forward_with(make_step(order="ifog")), "order i,f,o,g"),
    "h = o*c": (_forward_with(make_step(out="o*c")), "the tanh on the cell state is missing"),
    "multiplicative c": (_forward_with(make_step(cell="f*c*i*g")), "multiplicative"),
    "three items": (lambda *a: (forward_looped(*a)[0], *forward_looped(*a)[1]), "got three items"),
    "state as a tensor": (lambda *a: (forward_looped(*a)[0], forward_looped(*a)[1][0]), "as the second item the pair (h_T, c_T), got a Tensor"),
    "(c_T, h_T)": (lambda *a: (forward_looped(*a)[0], forward_looped(*a)[1][::-1]), "the pair is (h_T, c_T)"),
    "c_T is c0": (lambda x, h0, c0, *w: (forward_looped(x, h0, c0, *w)[0], (forward_looped(x, h0, c0, *w)[1][0], c0)),
                  "c_T is c0"),
    "layers axis": (lambda *a: (forward_looped(*a)[0], tuple(t[None] for t in forward_looped(*a)[1])),
                    "leading layers axis"),
    "time-first": (lambda *a: (forward_looped(*a)[0].transpose(0, 1), forward_looped(*a)[1]), "time-first"),
    "nn.LSTM": (_nn_lstm, "fused recurrent kernel 'lstm'"),
    "raises": (_raise, "raised ValueError"),
}


@pytest.mark.parametrize("name", list(WRONG_FORWARDS))
def test_lstm_forward_rejects_wrong_code(name):
    fn, diagnosis = WRONG_FORWARDS[name]
    assert_rejected(check_lstm_forward, fn, diagnosis)


def make_peephole(o_peeks="new", on_g=False, swap_if=False, none=False, base=step_chunked):
    def step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
        i, f, g, o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
        if not none:
            wi, wf = (w_cf, w_ci) if swap_if else (w_ci, w_cf)
            i, f = i + wi * c_prev, f + wf * c_prev
        if on_g:
            g = g + w_co * c_prev
        c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
        if not none and not on_g:
            o = o + w_co * (c if o_peeks == "new" else c_prev)
        return torch.sigmoid(o) * torch.tanh(c), c
    return step


def _peephole_order_ifog(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    i, f, o, g = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f + w_cf * c_prev) * c_prev + torch.sigmoid(i + w_ci * c_prev) * torch.tanh(g)
    return torch.sigmoid(o + w_co * c) * torch.tanh(c), c


WRONG_PEEPHOLES = {
    **shared("peephole_lstm_step"),  # peephole_old_c, uses_library (rnncourse.PeepholeLSTMCell)
    "peephole on g": (make_peephole(on_g=True), "the third peephole goes to the candidate g"),
    "i and f peepholes swapped": (make_peephole(swap_if=True), "peephole weights of i and f are swapped"),
    "no peepholes": (make_peephole(none=True), "the peepholes are left out"),
    "gate order i,f,o,g": (_peephole_order_ifog, "order i,f,o,g"),
}


@pytest.mark.parametrize("name", list(WRONG_PEEPHOLES))
def test_peephole_rejects_wrong_code(name):
    fn, diagnosis = WRONG_PEEPHOLES[name]
    assert_rejected(check_peephole_lstm_step, fn, diagnosis)


def test_variant_tables_hold_no_duplicate_behaviour():
    # Two phrases with identical numbers would make the second unreachable.
    from rnncourse.checks.lstm import PEEPHOLE_PLAN, _step_variants
    from rnncourse.checks.core import build_cases, on_cpu64
    a = on_cpu64(build_cases(True, PEEPHOLE_PLAN)[0])
    for peephole in (False, True):
        hs, cs = _step_variants(a, a["x_t"], a["h_prev"], a["c_prev"], peephole)
        keys = [k for k in hs if hs[k] is not None]
        for j, p in enumerate(keys):
            for q in keys[j + 1:]:
                same = torch.allclose(hs[p], hs[q]) and torch.allclose(cs[p], cs[q])
                assert not same, f"'{p}' and '{q}' give the same step"
    assert len(STEP_VARIANTS) > 30 and len(PEEPHOLE_VARIANTS) == 4


def test_transposed_W_ih_is_named_when_it_runs():
    # x_t @ W_ih runs without an error only when W_ih is square (I = 4H)
    from rnncourse.checks.core import make_case, on_cpu64
    from rnncourse.checks.lstm import _step_args, _step_variants
    gen = torch.Generator().manual_seed(0)
    sizes = {"B": 3, "I": 8, "H": 2}
    a = on_cpu64(make_case(0, 1, 0, torch.float64, torch.device("cpu"), sizes, _step_args(gen, sizes)))
    wrong = make_step()(a["x_t"], a["h_prev"], a["c_prev"], a["W_ih"].T, *(a[k] for k in ("W_hh", "b_ih", "b_hh")))
    hs, cs = _step_variants(a, a["x_t"], a["h_prev"], a["c_prev"], peephole=False)
    phrase = "W_ih is transposed (x_t @ W_ih instead of x_t @ W_ih.T)"
    assert torch.allclose(cs[phrase], wrong[1]) and torch.allclose(hs[phrase], wrong[0])


def test_checks_are_deterministic():
    msgs = []
    for _ in range(2):
        with pytest.raises(CheckFailed) as info:
            check_lstm_forward(WRONG_FORWARDS["cell_not_carried"][0], hidden=True)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_hidden_checks_run_a_gpu_case(capsys):
    check_lstm_step(step_chunked, hidden=True)
    check_lstm_forward(forward_preallocated, hidden=True)
    check_peephole_lstm_step(peephole_chunked, hidden=True)
    assert "float64/cuda" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="is on device 'cpu' but the inputs are on 'cuda'"):
        check_lstm_step(lambda *a: tuple(t.cpu() for t in step_chunked(*a)), hidden=True)
