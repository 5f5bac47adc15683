"""Issue class 1, "switched off means off": in every lesson a learner who reaches the
package's answer-computing code (functional steps, models, data helpers, the checks'
own reference and variant helpers, imported into the namespace before the check),
or, where autograd is forbidden, any automatic-differentiation route, is refused
with a message saying why; catching the refusal does not get past it. The right
answers are accepted (tests/_right.py)."""
import pytest
import torch

import rnncourse
from rnncourse import functional as F
from rnncourse.checks.bptt import reference_backward
from rnncourse.checks.gru import count_variant, gru_variant, torch_count
from rnncourse.checks.lstm import _PEEP, _reference_forward, _variant
from rnncourse.checks.rnn import reference_forward
from rnncourse.checks.vanishing import chain_norms
from rnncourse.data import recall
from rnncourse.data.stream import batchify as package_batchify, tbptt_chunks

from _reject import assert_rejected
from _right import CHECKS, RIGHT

OFF = "is switched off while your function runs"


def _embed_by_projection(indices, weight):
    onehot = torch.nn.functional.one_hot(indices, weight.shape[0]).to(weight)
    return F.input_projection(onehot, weight.T, None)  # one-hot @ weight, by the package


def _one_hot_by_package(indices, num_classes):
    recall.vocab_size()  # any answer-side package code is off, not only the obvious
    return RIGHT["one_hot"](indices, num_classes)


def _rnn_step_functional(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return F.rnn_step(F.input_projection(x_t, W_ih, b_ih + b_hh), h_prev, W_hh)


def _probs_by_projection(h, W_hy, b_y):
    return F.input_projection(h, W_hy, b_y).softmax(-1)


def _lstm_step_functional(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    return F.lstm_step(F.input_projection(x_t, W_ih, b_ih + b_hh), h_prev, c_prev, W_hh)


def _backward_by_reference(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    return reference_backward({"x": x, "h0": h0, "W_ih": W_ih, "W_hh": W_hh, "b_ih": b_ih,
                               "b_hh": b_hh, "dh": dh})


def _backward_by_jacrev(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    def loss(*p):
        return (RIGHT["rnn_forward"](*p)[0] * dh).sum()
    return torch.func.grad(loss, argnums=(0, 1, 2, 3, 4, 5))(x, h0, W_ih, W_hh, b_ih, b_hh)


def _backward_by_forward_ad(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        fwAD.make_dual(x, torch.ones_like(x))
    return RIGHT["rnn_backward"](x, h0, W_ih, W_hh, b_ih, b_hh, dh)


def _backward_by_autograd_functional(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    return torch.autograd.functional.vjp(lambda *p: RIGHT["rnn_forward"](*p)[0],
                                         (x, h0, W_ih, W_hh, b_ih, b_hh), dh)[1]


def _clip_catching_the_refusal(parameters, max_norm):
    parameters = list(parameters)
    try:
        return torch.nn.utils.clip_grad_norm_(parameters, max_norm)
    except Exception:  # the refusal, caught: then the learner's own code
        return RIGHT["clip_grad_norm_"](parameters, max_norm)


def _gru_catching_the_refusal(*args):
    try:
        return gru_variant(*args)
    except Exception:
        return gru_variant(*args)  # the second call gets through; the first was recorded


WRONG = {
    "one_hot": [(_one_hot_by_package, "vocab_size (rnncourse/data/recall.py)")],
    "embed": [(_embed_by_projection, "input_projection (rnncourse/functional.py)")],
    "rnn_step": [(_rnn_step_functional, "input_projection (rnncourse/functional.py)")],
    "rnn_forward": [(reference_forward, "reference_forward (rnncourse/checks/rnn.py)")],
    "next_token_probs": [(_probs_by_projection, "input_projection (rnncourse/functional.py)")],
    "rnn_backward": [(_backward_by_reference, "reference_backward (rnncourse/checks/bptt.py)"),
                     (_backward_by_jacrev, "autograd (torch.func.grad)"),
                     (_backward_by_forward_ad, "autograd (torch.autograd.forward_ad.dual_level"),
                     (_backward_by_autograd_functional, "autograd (torch.autograd.functional.vjp)")],
    "batchify": [(package_batchify, "batchify (rnncourse/data/stream.py)")],
    "tbptt_batches": [(tbptt_chunks, "tbptt_chunks (rnncourse/data/stream.py)")],
    "jacobian_norms": [(chain_norms, "chain_norms (rnncourse/checks/vanishing.py)")],
    "clip_grad_norm_": [(_clip_catching_the_refusal, "Catching the refusal does not get past it")],
    "lstm_step": [(_lstm_step_functional, "input_projection (rnncourse/functional.py)")],
    "lstm_forward": [(lambda *a: _reference_forward(dict(zip(("x", "h0", "c0", "W_ih", "W_hh", "b_ih", "b_hh"), a))),
                      "_reference_forward (rnncourse/checks/lstm.py)")],
    "peephole_lstm_step": [(lambda x, h, c, *w: _variant(x, h, c, dict(zip(
        ("W_ih", "W_hh", "b_ih", "b_hh", "w_ci", "w_cf", "w_co"), w)), peep=_PEEP),
        "_variant (rnncourse/checks/lstm.py)")],
    "gru_step": [(gru_variant, "gru_variant (rnncourse/checks/gru.py)"),
                 (_gru_catching_the_refusal, "Catching the refusal does not get past it")],
    "count_parameters": [(count_variant, "count_variant (rnncourse/checks/gru.py)"),
                         (lambda kind, I, H, L=1, bi=False, bias=True: torch_count(kind, I, H, L, bi, bias),
                          "torch_count (rnncourse/checks/gru.py)")],
}
ROUTES = [(ex, i) for ex, fns in WRONG.items() for i in range(len(fns))]


@pytest.mark.parametrize("exercise,i", ROUTES)
def test_every_route_to_an_answer_is_refused_with_a_reason(exercise, i):
    fn, phrase = WRONG[exercise][i]
    msg = assert_rejected(CHECKS[exercise], fn, phrase, exercise, hidden=False, first_case=True)
    assert OFF in msg or "autograd" in msg or "Catching" in msg, msg


def test_every_exercise_has_a_refused_route_and_an_accepted_answer():
    assert set(WRONG) == set(RIGHT) == set(CHECKS)


@pytest.mark.parametrize("exercise", list(RIGHT))
def test_the_right_answers_pass(exercise):
    CHECKS[exercise](RIGHT[exercise])
    CHECKS[exercise](RIGHT[exercise], hidden=True)
