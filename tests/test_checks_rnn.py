"""The lesson-01 checks accept correct code however it is written and reject the
typical wrong variants with the right diagnosis."""
import sys
import warnings

import pytest
import torch

import rnncourse
from rnncourse.checks.core import CheckFailed
from rnncourse.checks.rnn import check_next_token_probs, check_rnn_forward, check_rnn_step

from _reject import assert_rejected
from classroom.wrong import shared


# ---------------------------------------------------------------- correct code

def step_vectorised(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


def step_per_row(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    # one sequence at a time, matrix-vector products, weights on the left
    rows = [torch.tanh(W_ih @ x + b_ih + W_hh @ h + b_hh) for x, h in zip(x_t, h_prev)]
    return torch.stack(rows)


def step_upcast(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    # computes in float64 whatever comes in: the lesson asks for the inputs' dtype, so wrong
    # for float32 inputs (tests/test_checks_walkaround.py)
    args = [a.double() for a in (x_t, h_prev, W_ih, W_hh, b_ih, b_hh)]
    return step_vectorised(*args)


def step_functional(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    F = torch.nn.functional
    return torch.tanh(F.linear(x_t, W_ih, b_ih) + F.linear(h_prev, W_hh, b_hh))


def forward_looped(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = step_vectorised(x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), h


def forward_preallocated(x, h0, W_ih, W_hh, b_ih, b_hh):
    B, T, _ = x.shape
    xw = torch.einsum("bti,hi->bth", x, W_ih) + b_ih  # all input projections at once
    outputs = torch.empty(B, T, h0.shape[1], dtype=x.dtype, device=x.device)
    h = h0
    for t in range(T):
        h = torch.tanh(xw[:, t] + h @ W_hh.T + b_hh)
        outputs[:, t] = h
    return outputs, outputs[:, -1]


def probs_softmax(h, W_hy, b_y):
    return torch.softmax(h @ W_hy.T + b_y, dim=-1)


def probs_by_hand(h, W_hy, b_y):
    z = h @ W_hy.T + b_y
    e = torch.exp(z - z.max(dim=1, keepdim=True).values)
    return e / e.sum(dim=1, keepdim=True)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [step_vectorised, step_per_row, step_functional])
def test_rnn_step_accepts_correct_code(fn, hidden):
    check_rnn_step(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [forward_looped, forward_preallocated])
def test_rnn_forward_accepts_correct_code(fn, hidden):
    check_rnn_forward(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [probs_softmax, probs_by_hand])
def test_next_token_probs_accepts_correct_code(fn, hidden):
    check_next_token_probs(fn, hidden=hidden)


def test_visible_cases_cover_float32_and_float64(capsys):
    check_rnn_step(step_vectorised)
    assert "float32/cpu, float64/cpu" in capsys.readouterr().out


def test_right_answer_writes_nothing_to_stderr(capfd):
    def noisy(*args):
        warnings.warn("a harmless warning from the learner's code")
        print("debugging output on stderr", file=sys.stderr)
        return step_vectorised(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a warning escaping the check would raise here
        check_rnn_step(noisy, hidden=True)
        check_rnn_forward(forward_looped, hidden=True)
        check_next_token_probs(probs_softmax, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- wrong code

def _nn_cell_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.RNNCell(W_ih.shape[1], W_ih.shape[0], dtype=x_t.dtype)
    cell.load_state_dict({"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh})
    return cell(x_t, h_prev)


def _inplace_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    h_prev += 0  # harmless here, but mutates the caller's tensor...
    h_prev.mul_(2)
    return step_vectorised(x_t, h_prev / 2, W_ih, W_hh, b_ih, b_hh)


def _raise(*args):
    raise ValueError("something broke")


def _stub(*args):
    raise NotImplementedError()


# the simulated class's wrong steps (W_hh_transposed, no_tanh, no_b_hh, uses_library), then more
WRONG_STEPS = {
    **shared("rnn_step"),
    "relu": (lambda x, h, Wx, Wh, bx, bh: torch.relu(x @ Wx.T + bx + h @ Wh.T + bh), "ReLU is used instead of tanh"),
    "missing biases": (lambda x, h, Wx, Wh, bx, bh: torch.tanh(x @ Wx.T + h @ Wh.T), "both biases are left out"),
    "no recurrence": (lambda x, h, Wx, Wh, bx, bh: torch.tanh(x @ Wx.T + bx + bh), "h_prev is ignored"),
    "transposed W_ih": (lambda x, h, Wx, Wh, bx, bh: torch.tanh(x @ Wx + bx + h @ Wh.T + bh), "W_ih is (H, I)"),
    "wrong shape": (lambda *a: step_vectorised(*a).T, "expected h_t of shape (B, H)"),
    "NaN": (lambda *a: step_vectorised(*a) * float("nan"), "contains NaN"),
    "raises": (_raise, "raised ValueError: something broke"),
    "stub": (_stub, "NotImplementedError"),
    "nn.RNNCell": (_nn_cell_step, "fused recurrent kernel 'rnn_tanh_cell'"),
    "wrong device": (lambda *a: step_vectorised(*a).to("meta"), "is on device 'meta'"),
    "float32 for float64 input": (lambda *a: step_vectorised(*a).float(), "precision was lost"),
    "in-place on input": (_inplace_step, "changed its input 'h_prev' in place"),
    "not a tensor": (lambda *a: step_vectorised(*a).tolist(), "should be a torch.Tensor, got list"),
}


@pytest.mark.parametrize("name", list(WRONG_STEPS))
def test_rnn_step_rejects_wrong_code(name):
    fn, diagnosis = WRONG_STEPS[name]
    assert_rejected(check_rnn_step, fn, diagnosis, "rnn_step", first_case=True)


def test_rnn_step_not_a_function():
    with pytest.raises(CheckFailed, match="should be a function"):
        check_rnn_step(None)


def _forward_with(step):
    def forward(x, h0, *w):
        h, outs = h0, []
        for t in range(x.shape[1]):
            h = step(x[:, t], h, *w)
            outs.append(h)
        return torch.stack(outs, dim=1), h
    return forward


def _with_h0(x, h0, *w):
    outputs, h = forward_looped(x, h0, *w)
    return torch.cat([h0.unsqueeze(1), outputs], dim=1), h


def _shifted(x, h0, *w):
    outputs, h = forward_looped(x, h0, *w)
    return torch.cat([h0.unsqueeze(1), outputs[:, :-1]], dim=1), h


def _reference_rnn(x, h0, W_ih, W_hh, b_ih, b_hh):
    rnn = rnncourse.RNN(W_ih.shape[1], W_ih.shape[0], batch_first=True, dtype=x.dtype)
    rnn.load_state_dict({"weight_ih_l0": W_ih, "weight_hh_l0": W_hh, "bias_ih_l0": b_ih, "bias_hh_l0": b_hh})
    out, h_n = rnn(x, h0.unsqueeze(0))
    return out, h_n[0]


WRONG_FORWARDS = {
    **shared("rnn_forward"),  # state_not_carried, time_first, uses_library (torch.nn.RNN)
    "outputs include h0": (_with_h0, "one state too many"),
    "outputs shifted (h0 in, last out)": (_shifted, "the outputs are shifted by one step"),
    "drops the last state": (lambda *a: (forward_looped(*a)[0][:, :-1], forward_looped(*a)[1]), "one state too few"),
    "time-first": (lambda *a: (forward_looped(*a)[0].transpose(0, 1), forward_looped(*a)[1]), "time-first"),
    "h_T is h0": (lambda x, h0, *w: (forward_looped(x, h0, *w)[0], h0), "h_T is h0"),
    "h_T has a layers axis": (lambda *a: (forward_looped(*a)[0], forward_looped(*a)[1][None]), "leading layers axis"),
    "missing tanh": (_forward_with(WRONG_STEPS["no_tanh"][0]), "the tanh is missing"),
    "relu": (_forward_with(WRONG_STEPS["relu"][0]), "ReLU is used instead of tanh"),
    "transposed W_hh": (_forward_with(WRONG_STEPS["W_hh_transposed"][0]), "W_hh is transposed"),
    "missing b_hh": (_forward_with(WRONG_STEPS["no_b_hh"][0]), "b_hh is left out"),
    "only outputs": (lambda *a: forward_looped(*a)[0], "expected a pair (outputs, h_T), got a Tensor"),
    "rnncourse.RNN": (_reference_rnn, "rnncourse.RNN was called"),
    "float32 buffer": (lambda x, h0, *w: (forward_looped(x, h0, *w)[0].float(), forward_looped(x, h0, *w)[1]),
                       "precision was lost"),
    "raises": (_raise, "raised ValueError"),
}


@pytest.mark.parametrize("name", list(WRONG_FORWARDS))
def test_rnn_forward_rejects_wrong_code(name):
    fn, diagnosis = WRONG_FORWARDS[name]
    assert_rejected(check_rnn_forward, fn, diagnosis, "rnn_forward")


def test_rnn_forward_float32_buffer_caught_by_visible_tests():
    # a learner who builds outputs with torch.zeros(B, T, H) (float32) hears it before grading
    def forward(x, h0, *w):
        outputs = torch.zeros(x.shape[0], x.shape[1], h0.shape[1])
        h = h0
        for t in range(x.shape[1]):
            h = step_vectorised(x[:, t], h, *w)
            outputs[:, t] = h
        return outputs, h
    with pytest.raises(CheckFailed, match="created on the CPU|precision was lost"):
        check_rnn_forward(forward)


WRONG_PROBS = {
    **shared("next_token_probs"),  # softmax_over_batch
    "log_softmax": (lambda h, W, b: torch.log_softmax(h @ W.T + b, dim=-1), "log-probabilities"),
    "logits": (lambda h, W, b: h @ W.T + b, "logits with no softmax"),
    "missing bias": (lambda h, W, b: torch.softmax(h @ W.T, dim=-1), "b_y is left out"),
    "transposed result": (lambda h, W, b: torch.softmax(h @ W.T + b, dim=-1).T, "transposed"),
    "NaN": (lambda h, W, b: torch.softmax(h @ W.T + b, dim=-1) / 0 * 0, "contains NaN"),
    "wrong device": (lambda h, W, b: torch.softmax(h @ W.T + b, dim=-1).to("meta"), "device"),
    "slightly off": (lambda h, W, b: torch.softmax(h @ W.T + 1.01 * b, dim=-1), "largest error"),
}


@pytest.mark.parametrize("name", list(WRONG_PROBS))
def test_next_token_probs_rejects_wrong_code(name):
    fn, diagnosis = WRONG_PROBS[name]
    assert_rejected(check_next_token_probs, fn, diagnosis, "next_token_probs")


def test_checks_are_deterministic():
    msgs = []
    for _ in range(2):
        with pytest.raises(CheckFailed) as info:
            check_rnn_forward(WRONG_FORWARDS["missing b_hh"][0], hidden=True)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_hidden_checks_run_a_gpu_case(capsys):
    check_rnn_step(step_vectorised, hidden=True)
    check_rnn_forward(forward_preallocated, hidden=True)
    check_next_token_probs(probs_softmax, hidden=True)
    assert "float64/cuda" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="is on device 'cpu' but the inputs are on 'cuda'"):
        check_rnn_step(lambda *a: step_vectorised(*a).cpu(), hidden=True)
