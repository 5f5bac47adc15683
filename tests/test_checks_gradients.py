"""Issue class 3, gradients flow: every exercise a model trains through (embed, the
steps, the forwards, the output distribution) has a gradient case. Right values
computed under no_grad, with a detached state, through .data, or with an in-place
write that breaks the backward fail with "the values are right, but nothing can be
trained through them"; the right answers (tests/_right.py) pass it."""
import pytest
import torch

from rnncourse.checks.cases import build_cases
from rnncourse.checks import gru, lstm, rnn, welcome

from _reject import assert_rejected
from _right import CHECKS, RIGHT

R = RIGHT
TRAINED = "the values are right, but nothing can be trained through them"


def embed_no_grad(indices, weight):
    with torch.no_grad():
        return weight[indices]


def rnn_step_data(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return R["rnn_step"](x_t, h_prev, W_ih.data, W_hh, b_ih, b_hh)  # .data: no gradient to W_ih


def rnn_forward_detached(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = R["rnn_step"](x[:, t], h.detach(), W_ih, W_hh, b_ih, b_hh)  # truncates BPTT to one step
        outs.append(h)
    return torch.stack(outs, dim=1), h


def probs_numpy(h, W_hy, b_y):
    logits = (h @ W_hy.T + b_y).detach().numpy()  # a NumPy round trip
    return torch.softmax(torch.from_numpy(logits), dim=-1)


def lstm_step_inplace(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    i, f, o, g = torch.sigmoid(i), torch.sigmoid(f), torch.sigmoid(o), torch.tanh(g)
    c_t = f * c_prev + i * g
    h_t = o * torch.tanh(c_t)
    f.zero_()  # after use: the values are right, but the backward needs f
    return h_t, c_t


def lstm_forward_detached_cell(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        h, c = R["lstm_step"](x[:, t], h, c.detach(), W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), (h, c)


def peephole_no_grad(*args):
    with torch.no_grad():
        return R["peephole_lstm_step"](*args)


def gru_step_inplace(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    h_t = (1 - z) * torch.tanh(x_n + r * h_n) + z * h_prev
    z.mul_(1.0)  # an in-place write, harmless to the values, fatal to the backward
    return h_t


WRONG = {
    "embed": (embed_no_grad, "not connected to the inputs in autograd's graph"),
    "rnn_step": (rnn_step_data, "no gradient reaches 'W_ih'"),
    "rnn_forward": (rnn_forward_detached, "the gradient with respect to"),
    "next_token_probs": (probs_numpy, "not connected to the inputs"),
    "lstm_step": (lstm_step_inplace, "back-propagating through your result fails"),
    "lstm_forward": (lstm_forward_detached_cell, "the gradient with respect to"),
    "peephole_lstm_step": (peephole_no_grad, "not connected to the inputs"),
    "gru_step": (gru_step_inplace, "back-propagating through your result fails"),
}


@pytest.mark.parametrize("exercise", list(WRONG))
def test_right_values_that_cannot_be_trained_through_fail(exercise):
    fn, phrase = WRONG[exercise]
    for hidden in (False, True):
        msg = assert_rejected(CHECKS[exercise], fn, TRAINED, exercise, hidden=hidden)
        assert phrase in msg and "with gradients" in msg, msg


@pytest.mark.parametrize("exercise", list(WRONG))
def test_the_right_answers_pass_the_gradient_case(exercise):
    CHECKS[exercise](RIGHT[exercise], hidden=True)


def test_the_trained_exercises_declare_a_gradient_case():
    plans = {"embed": None, "rnn_step": rnn.STEP_PLAN, "rnn_forward": rnn.FORWARD_PLAN,
             "next_token_probs": rnn.PROBS_PLAN, "lstm_step": lstm.STEP_PLAN,
             "lstm_forward": lstm.FORWARD_PLAN, "peephole_lstm_step": lstm.PEEPHOLE_PLAN,
             "gru_step": gru.STEP_PLAN}
    assert set(plans) == set(WRONG)
    for name, plan in plans.items():
        if plan is not None:
            cases = build_cases(True, plan)
            assert cases[0].gradient is not None and all(c.gradient is None for c in cases[1:]), name
    assert welcome  # embed's plan is built inside its check; the test above covers it


def test_a_gradient_case_is_quiet_about_wrong_values():
    # wrong values are the value comparison's to name, not the gradient case's
    assert_rejected(CHECKS["rnn_step"], lambda *a: R["rnn_step"](*a) * 0.5, "h_t is wrong", "rnn_step")
