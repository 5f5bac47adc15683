"""The wrong learners shared by the check tests and the simulated classes
(tests/classroom/wrong.py): what the class hands in is what the check tests
call, and every check rejects it with its diagnosis, as a function and as the
body a notebook runs."""
import inspect
import textwrap

import pytest
import torch

import rnncourse
from rnncourse.checks import bidirectional, bptt, gru, lstm, masking, modern, rnn, vanishing, welcome

from _reject import assert_rejected
from classroom import cases
from classroom import wrong
from classroom.wrong import LEARNERS, body, lstm_step, parallel_scan, rnn_states, rnn_step

CHECKS = {name[len("check_"):]: fn for module in (welcome, rnn, bptt, vanishing, lstm, gru, bidirectional, masking, modern)
          for name, fn in vars(module).items() if name.startswith("check_")}
ALL = [(ex, student) for ex, learners in LEARNERS.items() for student in learners]


def _as_notebook_cell(learner):
    """The learner's function rebuilt from its body, in a notebook's namespace:
    torch, rnncourse and the lesson's own helpers (the instructor's versions)."""
    params = str(inspect.signature(learner.fn))
    source = f"def {learner.exercise}{params}:\n" + textwrap.indent(body(learner.fn), "    ")
    namespace = {"torch": torch, "rnncourse": rnncourse, "rnn_step": rnn_step,
                 "rnn_states": rnn_states, "lstm_step": lstm_step, "parallel_scan": parallel_scan}
    # lesson 06's wrong learners build on its right functions and one shared helper
    namespace.update({name: getattr(wrong, name) for name in ("reverse_padded", "bilstm", "_bilstm_with")})
    exec(compile(source, f"<{learner.student}>", "exec"), namespace)
    return namespace[learner.exercise]


@pytest.mark.parametrize("exercise,student", ALL)
def test_every_shared_learner_is_rejected_with_its_diagnosis(exercise, student):
    learner = LEARNERS[exercise][student]
    assert_rejected(CHECKS[exercise], learner.fn, learner.diagnosis)
    if f"{exercise}(" not in body(learner.fn):  # a body that wraps the right function by name
        assert_rejected(CHECKS[exercise], _as_notebook_cell(learner), learner.diagnosis)
    # the visible tests reject it too (a visible case may find another symptom first)
    assert_rejected(CHECKS[exercise], learner.fn, "", hidden=False)


def test_the_classes_hand_in_the_shared_bodies():
    handed_in = {(ex, s.student): code for a in ("00_welcome", "01_rnn", "02_bptt",
                                                  "03_vanishing_exploding", "04_lstm", "05_gru",
                                                  "06_bidirectional_stacked", "07_batching_masking", "11_modern_recurrences")
                 for s in cases(a) for ex, code in s.bodies.items()}
    # Lesson 06's class writes its submissions as whole notebooks of its own (students
    # named by mistake, across exercises), not from these bodies; its wrong learners here
    # are rejected one by one in tests/test_checks_bidirectional.py and above.
    lesson06 = {"reverse_padded", "bilstm", "stacked_bilstm"}
    for ex, student in ALL:
        if ex in lesson06:
            continue
        assert handed_in[(ex, student)] == body(LEARNERS[ex][student].fn), (ex, student)


def test_correct_helpers_pass():
    # the helpers the bodies lean on are the notebooks' correct ones
    rnn.check_rnn_step(rnn_step, hidden=True)
    lstm.check_lstm_step(lstm_step, hidden=True)
