"""The instructor's workflow, end to end, on a temporary copy of the course.

For each lesson of the lesson map (rnncourse.lessons, which the structure test
holds to the folders of solutions/): generate, release through a local exchange,
fetch and submit as a class of simulated students (tests/classroom/), collect,
autograde each submission, generate feedback and export grades. Then check the
exact score of every autograded test cell, that grading twice gives the same
scores, that feedback shows no hidden test, and that the export adds up.
Written answers are graded by hand in formgrader, so they are left out here.

Run with -s to see the class's score table and the time per submission.
"""
from __future__ import annotations

import html
import importlib
import re
from dataclasses import dataclass

import nbformat
import pytest

from classroom import cases, regrade_student
from classroom.course import ROOT, Course
from classroom.submissions import Submission, build, expected, graded_tests
from rnncourse.lessons import LESSONS

pytestmark = pytest.mark.slow


@dataclass
class Graded:
    course: Course
    solution: nbformat.NotebookNode
    submissions: list[Submission]
    seconds: dict   # student -> seconds `nbgrader autograde` spent on that submission
    scores: dict    # student -> grade_id -> (auto_score, max_score, cell_type)


def autograded(scores: dict, tests: dict) -> dict:
    """Only the autograded test cells; written answers wait for a human."""
    return {gid: scores[gid][0] for gid in tests if gid in scores}


def table(g: Graded) -> str:
    tests = graded_tests(g.solution)
    width = max(len(s.student) for s in g.submissions)
    head = f"{'student':<{width}}  " + "  ".join(tests) + "  total    time  what"
    rows = [f"{g.course.assignment}: autograded test cells (points)", head]
    for sub in g.submissions:
        got = autograded(g.scores[sub.student], tests)
        cells = "  ".join(f"{_fmt(got.get(gid)):>{len(gid)}}" for gid in tests)
        total = sum(v or 0 for v in got.values())
        rows.append(f"{sub.student:<{width}}  {cells}  {total:>5g}  {g.seconds.get(sub.student, float('nan')):5.1f} s  "
                    f"{sub.what}")
    rows.append(f"{'max':<{width}}  " + "  ".join(f"{pts:>{len(gid)}g}" for gid, pts in tests.items())
                + f"  {sum(tests.values()):>5g}")
    return "\n".join(rows)


def _fmt(score) -> str:
    return "-" if score is None else f"{score:g}"


@pytest.fixture(scope="module", params=LESSONS, ids=str)
def graded(request, tmp_path_factory) -> Graded:
    assignment = request.param.assignment
    # A lesson without its simulated class fails here (ModuleNotFoundError naming
    # tests/classroom/a<assignment>), rather than being graded with the baseline only.
    importlib.import_module(request.param.classroom)
    course = Course(tmp_path_factory.mktemp(f"course-{assignment}"), assignment)
    solution = nbformat.read(ROOT / "solutions" / assignment / f"{assignment}.ipynb", as_version=4)
    submissions = cases(assignment)
    course.generate_and_release()
    for sub in submissions:
        released = nbformat.read(course.fetch(sub.student), as_version=4)
        course.submit(sub.student, build(released, solution, sub))
    course.collect()
    seconds = course.autograde_class()
    course.generate_feedback()
    g = Graded(course, solution, submissions, seconds,
               {sub.student: course.scores(sub.student) for sub in submissions})
    n = len(submissions)
    print(f"\n{table(g)}\nautograde: {sum(seconds.values()):.0f} s for {n} submissions, "
          f"{sum(seconds.values()) / n:.1f} s each on average\n")
    return g


def test_every_submission_gets_exactly_the_expected_scores(graded):
    tests = graded_tests(graded.solution)
    wrong = []
    for sub in graded.submissions:
        want = expected(graded.solution, sub)
        got = autograded(graded.scores[sub.student], tests)
        for gid in tests:
            if got.get(gid) != want[gid]:
                wrong.append(f"{sub.student} ({sub.what}): {gid} scored {got.get(gid)}, "
                             f"expected {want[gid]}")
    assert not wrong, "\n".join(wrong) + "\n\n" + table(graded)


def test_written_answers_are_left_to_the_grader(graded):
    for sub in graded.submissions:
        for gid, (auto, _, cell_type) in graded.scores[sub.student].items():
            if cell_type == "markdown" and not sub.untouched:
                assert auto is None, f"{sub.student}: written answer {gid} was scored automatically"


def test_grading_twice_gives_the_same_scores(graded):
    student = regrade_student(graded.course.assignment)
    graded.course.autograde(student)
    assert graded.course.scores(student) == graded.scores[student]


def hidden_lines(solution) -> set[str]:
    """Lines of the hidden-test regions that appear nowhere in the visible tests."""
    hidden, visible = set(), set()
    for cell in solution.cells:
        inside = False
        for line in cell.source.split("\n"):
            if "BEGIN HIDDEN TESTS" in line or "END HIDDEN TESTS" in line:
                inside = "BEGIN" in line
            elif line.strip():
                (hidden if inside else visible).add(line.strip())
    return hidden - visible


def test_feedback_shows_no_hidden_test(graded):
    secret = hidden_lines(graded.solution)
    assert secret, "the assignment has no hidden tests"
    for sub in graded.submissions:
        page = graded.course.feedback_html(sub.student)
        text = html.unescape(re.sub(r"<[^>]+>", "", page))  # code is split into highlight spans
        leaks = [line for line in secret if line in text]
        leaks += [m for m in ("BEGIN HIDDEN TESTS", "hidden=True") if m in text]
        assert not leaks, f"feedback of {sub.student} shows hidden tests: {leaks}"


def test_exported_grades_add_up(graded):
    rows = {r["student_id"]: r for r in graded.course.export()}
    tests = graded_tests(graded.solution)
    for sub in graded.submissions:
        row = rows[sub.student]
        assert row["assignment"] == graded.course.assignment
        total = sum(v or 0 for v in autograded(graded.scores[sub.student], tests).values())
        assert float(row["score"]) == pytest.approx(total), sub.student
        written = sum(m for _, m, t in graded.scores[sub.student].values() if t == "markdown")
        assert float(row["max_score"]) == pytest.approx(sum(tests.values()) + written)


def test_every_test_cell_is_exercised_by_a_failing_submission(graded):
    """Each test cell must be shown to catch something beyond the untouched stub,
    or a check that passes everything would go unnoticed (the baseline alone
    proves nothing about wrong code, so a lesson must have learners of its own)."""
    extra = [s for s in graded.submissions if s.student not in ("solution", "release")]
    assert extra, (f"{graded.course.assignment} has no simulated learners "
                   f"(SUBMISSIONS in tests/classroom/a{graded.course.assignment}.py)")
    caught = set().union(*(s.lost for s in extra))
    missing = set(graded_tests(graded.solution)) - caught
    assert not missing, f"no wrong submission is caught by: {sorted(missing)}"
