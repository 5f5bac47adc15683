"""The simulated class of tests/test_grading.py.

Every assignment is graded with at least two submissions: the instructor's
solution (full marks) and the untouched release (zero). A lesson adds its own
learners in ``classroom/a<assignment>.py`` (e.g. ``a01_rnn.py``) as a list
``SUBMISSIONS`` of :class:`~classroom.submissions.Submission`; ``REGRADE``
names the student graded twice (default: the first one with mixed marks).
Each submission costs one run of the whole notebook, so add one only when it
catches something the others cannot.
"""
from __future__ import annotations

import importlib
import importlib.util

from .submissions import Submission

BASELINE = [
    Submission("solution", "the instructor's solution"),
    Submission("release", "the release handed in untouched", untouched=True),
]


def lesson_module(assignment: str):
    name = f"{__name__}.a{assignment}"
    return importlib.import_module(name) if importlib.util.find_spec(name) else None


def cases(assignment: str) -> list[Submission]:
    module = lesson_module(assignment)
    extra = list(getattr(module, "SUBMISSIONS", []))
    students = [s.student for s in BASELINE + extra]
    if len(set(students)) != len(students):
        raise ValueError(f"{assignment}: student ids repeat: {students}")
    return BASELINE + extra


def regrade_student(assignment: str) -> str:
    module = lesson_module(assignment)
    if getattr(module, "REGRADE", None):
        return module.REGRADE
    mixed = [s.student for s in cases(assignment) if s.lost and not s.untouched]
    return mixed[0] if mixed else "solution"
