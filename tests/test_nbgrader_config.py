"""nbgrader_config.py's hardening, proved on a tiny assignment of plain Python.

The lessons' checks already swallow stderr and shorten their own tracebacks,
so grading the real notebooks cannot tell whether the configuration does its
part. This assignment has none of that help: each setting is shown to change
a score (or the feedback) the way the course needs.
"""
from __future__ import annotations

import html
import os
import re

import nbformat
import pytest

from classroom.course import Course
from classroom.submissions import Submission, build, expected

pytestmark = pytest.mark.slow
NAME = "99_config"


def cell(kind: str, gid: str, source: str, points: int = 0):
    meta = {"grade": kind in ("test", "written"), "solution": kind in ("answer", "written"),
            "locked": kind == "test", "grade_id": gid, "schema_version": 3}
    if points:
        meta["points"] = points
    make = nbformat.v4.new_markdown_cell if kind == "written" else nbformat.v4.new_code_cell
    return make(source, metadata={"nbgrader": meta})


def assignment(folder) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [
        nbformat.v4.new_code_cell("import sys, warnings"),
        cell("answer", "add", "def add(a, b):\n    ### BEGIN SOLUTION\n    return a + b\n    ### END SOLUTION"),
        # A correct answer makes this test write to stderr, as a torch warning would.
        cell("test", "test_add", "assert add(1, 2) == 3\nwarnings.warn('harmless')\n"
                                  "### BEGIN HIDDEN TESTS\nassert add(5, 7) == 12, 'secret hidden case'\n"
                                  "### END HIDDEN TESTS", points=2),
        cell("answer", "mul", "def mul(a, b):\n    ### BEGIN SOLUTION\n    return a * b\n    ### END SOLUTION"),
        cell("test", "test_mul", "assert mul(2, 3) == 6\n### BEGIN HIDDEN TESTS\n"
                                  "assert mul(5, 7) == 35, 'secret hidden case'\n### END HIDDEN TESTS",
             points=3),
        cell("written", "why", "Why?\n\n### BEGIN SOLUTION\nBecause.\n### END SOLUTION", points=1),
    ]
    path = folder / NAME
    path.mkdir(parents=True)
    nbformat.write(nb, path / f"{NAME}.ipynb")
    return nb


CLASS = [
    Submission("solution", "correct; test_add writes a warning to stderr"),
    Submission("wrong", "add subtracts", bodies={"add": "return a - b"}, lost={"test_add"}),
    Submission("skipper", "add is the stub; its test tagged skip-execution",
               bodies={"add": "raise NotImplementedError()"},
               tags={"test_add": ["skip-execution"]}, lost={"test_add"}),
    Submission("tamperer", "add is wrong and its test edited; test of a correct mul deleted",
               bodies={"add": "return 0"}, edits={"test_add": "print('all good')"},
               deleted=("test_mul",), lost={"test_add"}),
    # Swallows the timeout's interrupt: the kernel stays busy, so test_mul
    # cannot run, but the submission is graded rather than aborted.
    Submission("stubborn", "add loops forever and swallows KeyboardInterrupt",
               bodies={"add": "while True:\n    try:\n        while True:\n            pass\n"
                              "    except KeyboardInterrupt:\n        pass"},
               lost={"test_add", "test_mul"}),
]


@pytest.fixture(scope="module")
def course(tmp_path_factory):
    source = tmp_path_factory.mktemp("source")
    solution = assignment(source)
    course = Course(tmp_path_factory.mktemp("course"), NAME, timeout=3, source=source / NAME)
    course.generate_and_release()
    for sub in CLASS:
        released = nbformat.read(course.fetch(sub.student), as_version=4)
        course.submit(sub.student, build(released, solution, sub))
    course.collect()
    course.autograde_class()
    course.generate_feedback()
    course.solution = solution
    return course


@pytest.mark.parametrize("sub", CLASS, ids=lambda s: s.student)
def test_scores(course, sub):
    got = {gid: auto for gid, (auto, _, kind) in course.scores(sub.student).items() if kind == "code"}
    assert got == expected(course.solution, sub), sub.what


@pytest.mark.parametrize("sub", CLASS, ids=lambda s: s.student)
def test_feedback_hides_hidden_tests_and_test_tracebacks(course, sub):
    text = html.unescape(re.sub(r"<[^>]+>", "", course.feedback_html(sub.student)))
    assert "secret hidden case" not in text and "HIDDEN TESTS" not in text
    if sub.student == "stubborn":
        assert "KernelStuck: not run" in text  # not a second full timeout
    if sub.student == "wrong":
        # The failed assert is reported by name only: no quoted source line.
        assert "AssertionError" in text and "----> " not in text


@pytest.mark.skipif(os.name == "nt", reason="Windows kernels have no local sockets: TCP it is")
def test_autograde_log_has_no_kernel_transport_warning(course):
    # an instructor reading the log must not find a security warning per submission
    graded = "\n".join(entry for entry in course.log if entry.startswith("$ nbgrader autograde"))
    assert "Validating" in graded or "autograde" in graded
    assert "running over TCP" not in graded, graded[-2000:]
    assert not list(course.root.rglob("k-[0-9]*")), "kernel sockets left in the course"
