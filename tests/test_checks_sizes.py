"""Issue class 4, no blind sizes and types: every lesson draws sizes of 1 where its
exercises allow them (a .squeeze() that drops an axis of size 1 fails), batchify
sees streams shorter and longer than the batch width, integer outputs keep their
dtype, a returned container is the one asked for, and what a lesson promises (the
inputs' dtype, an int) is what its check enforces. Right answers pass all of it."""
import pytest
import torch

from rnncourse.checks import bptt, gru, lstm, rnn, vanishing
from rnncourse.checks.cases import build_cases

from _reject import assert_rejected
from _right import CHECKS, RIGHT

R = RIGHT


def _squeezed(exercise):
    fn = R[exercise]

    def squeeze_all(*args):
        out = fn(*args)
        if isinstance(out, tuple):
            return tuple(o.squeeze() if isinstance(o, torch.Tensor) else tuple(p.squeeze() for p in o)
                         for o in out)
        return out.squeeze()
    return squeeze_all


# one exercise per lesson at least; every one of these is right at sizes of 2 and more
SQUEEZED = ["one_hot", "embed", "rnn_step", "rnn_forward", "next_token_probs", "rnn_backward",
            "jacobian_norms", "lstm_step", "lstm_forward", "peephole_lstm_step", "gru_step"]


@pytest.mark.parametrize("exercise", SQUEEZED)
def test_a_squeeze_is_caught_by_the_case_with_sizes_of_1(exercise):
    for hidden in (False, True):
        msg = assert_rejected(CHECKS[exercise], _squeezed(exercise), "expected", exercise, hidden=hidden)
        assert "=1" in msg, msg  # the case with sizes of 1 caught it


def test_plans_draw_sizes_of_1():
    for plan, names in ((rnn.STEP_PLAN, "BIH"), (rnn.FORWARD_PLAN, "BTIH"), (bptt.BACKWARD_PLAN, "BTIH"),
                        (bptt.TBPTT_PLAN, "BT"), (bptt.BATCHIFY_PLAN, "B"), (vanishing.CHAIN_PLAN, "BTIH"),
                        (lstm.FORWARD_PLAN, "BTIH"), (gru.STEP_PLAN, "BIH")):
        for hidden in (False, True):
            last = build_cases(hidden, plan)[-1]
            assert all(last.sizes[n] == 1 for n in names), (plan, last.sizes)


def test_batchify_sees_streams_shorter_and_longer_than_the_batch():
    cases = build_cases(True, bptt.BATCHIFY_PLAN)
    assert any(c.sizes["L"] < c.sizes["B"] for c in cases)
    assert any(c.sizes["L"] > c.sizes["B"] for c in cases)

    def batchify_assumes_long_rows(tokens, batch_size):
        L = tokens.shape[0] // batch_size
        return tokens[: batch_size * L].reshape(max(batch_size, L), min(batch_size, L))
    assert_rejected(CHECKS["batchify"], batchify_assumes_long_rows, "expected streams of shape", "batchify")


TYPES = {
    "embed": (lambda i, w: R["embed"](i, w.double()), "the exercise asks for the inputs' dtype"),
    "rnn_step": (lambda *a: R["rnn_step"](*(t.double() for t in a)), "the exercise asks for the inputs' dtype"),
    "rnn_backward": (lambda *a: R["rnn_backward"](*(t.double() for t in a)), "asks for the inputs' dtype"),
    "lstm_step": (lambda *a: R["lstm_step"](*(t.double() for t in a)), "asks for the inputs' dtype"),
    "gru_step": (lambda *a: R["gru_step"](*(t.double() for t in a)), "asks for the inputs' dtype"),
    "batchify": (lambda t, B: R["batchify"](t, B).int(), "keep the tokens' dtype"),
    "tbptt_batches": (lambda s, n: iter(R["tbptt_batches"](s, n)), "expected a list of (inputs, targets) pairs"),
    "count_parameters": (lambda *a: float(R["count_parameters"](*a)), "should be an int"),
    "jacobian_norms": (lambda s, W: R["jacobian_norms"](s, W).tolist(), "should be a torch.Tensor"),
}


@pytest.mark.parametrize("exercise", list(TYPES))
def test_what_the_lesson_promises_is_enforced(exercise):
    fn, phrase = TYPES[exercise]
    assert_rejected(CHECKS[exercise], fn, phrase, exercise, hidden=False)


def test_a_tuple_of_chunks_generator_is_refused_but_a_list_passes():
    assert_rejected(CHECKS["tbptt_batches"], lambda s, n: (p for p in R["tbptt_batches"](s, n)),
                    "got a generator", "tbptt_batches")
    CHECKS["tbptt_batches"](lambda s, n: list(R["tbptt_batches"](s, n)), hidden=True)


def test_an_int_tensor_count_and_numpy_ints_pass():
    import numpy as np
    CHECKS["count_parameters"](lambda *a: np.int64(R["count_parameters"](*a)))
    CHECKS["count_parameters"](lambda *a: torch.tensor(R["count_parameters"](*a)))
