"""Issue class 5, messages say what the evidence says: a named mistake only where it
reproduces the output and the right answer does not (a precision slip is not "the
norm after clipping"), both names where a case cannot tell two mistakes apart, the
learner's own helper blamed first, a layout hint only for shape evidence, and a None
asked about its missing return. Every lesson has one of these."""
import pytest
import torch

from rnncourse.checks.cases import Case, make_case
from rnncourse.checks.compare import compare, compare_scalar
from rnncourse.checks.core import CheckFailed

from _reject import assert_rejected
from _right import CHECKS, RIGHT

R = RIGHT


def _case(dtype=torch.float64):
    return make_case(0, 1, 0, dtype, torch.device("cpu"), {"B": 2}, {})


def test_a_variant_indistinguishable_from_the_answer_is_not_named():
    case = _case()
    with pytest.raises(CheckFailed) as info:  # 5.0 below max_norm: "after clipping" is 5.0 too
        compare_scalar(5.0 + 1e-7, 5.0, case, "clip", "the returned norm", {"you clip after": 5.0})
    assert "you clip after" not in str(info.value) and "off by" in str(info.value)
    with pytest.raises(CheckFailed) as info:
        compare(torch.ones(2) * 2, torch.ones(2, dtype=torch.float64), case, "f", "x",
                {"same as right": torch.ones(2, dtype=torch.float64), "doubled": torch.ones(2) * 2})
    assert "doubled" in str(info.value) and "same as right" not in str(info.value)


def test_two_mistakes_a_case_cannot_tell_apart_are_both_named():
    case = _case()
    with pytest.raises(CheckFailed, match="cannot tell apart: A; or if B"):
        compare(torch.zeros(2), torch.ones(2, dtype=torch.float64), case, "f", "x",
                {"A": torch.zeros(2), "B": torch.zeros(2), "C": torch.ones(2) * 3})


def clip_in_float32(parameters, max_norm):
    # right, but the norm is summed in float32: a precision slip, not a named mistake
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads)).item()
    if total > max_norm:
        for g in grads:
            g.mul_(max_norm / (total + 1e-6))
    return total


def test_lesson_03_a_precision_slip_is_not_told_the_norm_after_clipping():
    msg = assert_rejected(CHECKS["clip_grad_norm_"], clip_in_float32, "the returned norm is off by")
    assert "after clipping" not in msg


def test_lesson_01_h_1_for_h_T_at_T_2_names_both_explanations():
    # the first visible case has T = 2: h_1 is both the first state and the one before the end
    msg = assert_rejected(CHECKS["rnn_forward"], lambda *a: (R["rnn_forward"](*a)[0], R["rnn_forward"](*a)[0][:, 0]),
                          "cannot tell apart", "rnn_forward", hidden=False, first_case=True)
    assert "T=2" in msg and "first state h_1" in msg and "one step before the end" in msg, msg


def _notebook_forward(step_source: str, forward_name: str, forward_source: str):
    namespace = {"torch": torch}
    exec(step_source, namespace)
    exec(forward_source, namespace)
    return namespace[forward_name]


RNN_FORWARD = """
def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = rnn_step(x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), h
"""
LSTM_FORWARD = """
def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        h, c = lstm_step(x[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), (h, c)
"""


def test_lessons_01_04_a_forward_calling_a_wrong_step_blames_the_step_first():
    fwd = _notebook_forward("def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
                            "    return torch.tanh(x_t @ W_ih.T + h_prev @ W_hh.T + b_hh)\n",
                            "rnn_forward", RNN_FORWARD)
    with pytest.raises(CheckFailed) as info:
        CHECKS["rnn_forward"](fwd)
    msg = str(info.value)
    assert msg.startswith("rnn_forward: your rnn_step fails its own check, and rnn_forward calls it"), msg
    assert "b_ih is left out" in msg
    fwd = _notebook_forward("def lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):\n"
                            "    i, f, g, o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)\n"
                            "    c = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)\n"
                            "    return torch.sigmoid(o) * c, c\n", "lstm_forward", LSTM_FORWARD)
    with pytest.raises(CheckFailed, match="^lstm_forward: your lstm_step fails its own check"):
        CHECKS["lstm_forward"](fwd)
    # a right step and a right forward: nothing to blame
    CHECKS["rnn_forward"](_notebook_forward("from _right import rnn_step", "rnn_forward", RNN_FORWARD))


@pytest.mark.parametrize("exercise", ["rnn_step", "lstm_step", "gru_step"])
def test_lessons_01_04_05_the_layout_hint_needs_shape_evidence(exercise):
    scaled = assert_rejected(CHECKS[exercise], lambda *a: tuple(o * 0.5 for o in R[exercise](*a))
                             if exercise == "lstm_step" else R[exercise](*a) * 0.5, "wrong", exercise)
    assert "layout" not in scaled and "W_ih is (" not in scaled, scaled

    def transposed(x_t, h_prev, W_ih, *rest):
        return R[exercise](x_t, h_prev, W_ih.T, *rest)
    assert_rejected(CHECKS[exercise], transposed, "W_ih is (", exercise)


NONE = {"one_hot": "is None. Did your function forget to `return`", "embed": "forget to `return`",
        "rnn_forward": "returned None. Did it forget to `return outputs, h_T`",
        "rnn_backward": "returned None", "tbptt_batches": "returned None", "jacobian_norms": "forget to `return`",
        "clip_grad_norm_": "returned None", "lstm_forward": "returned None", "gru_step": "forget to `return`",
        "count_parameters": "returned None"}


@pytest.mark.parametrize("exercise", list(NONE))
def test_every_lesson_asks_a_none_about_its_return(exercise):
    def no_return(*args):
        R[exercise](*args)  # does the work (clipping in place, say) and forgets the return
    assert_rejected(CHECKS[exercise], no_return, NONE[exercise], exercise)


def test_case_is_still_importable_from_cases():
    assert Case  # the public API keeps its names (backward compatible for lessons 06-11)
