"""notebooks/ is exactly nbgrader's student version of solutions/, and every
notebook carries the cell metadata and the test cells that grading relies on."""
from __future__ import annotations

from collections import Counter

import nbformat
import pytest

from classroom.course import release
from notebook_rules import (ROOT, all_notebooks, kind, nbmeta, strip_hidden,
                            weak_test_reasons)

ASSIGNMENTS = release.assignments()
RELEASE_HINT = "Run `python3 course.py release` (tools/release.py) and commit notebooks/."


def solution(name: str):
    return nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)


@pytest.mark.slow
def test_notebooks_are_what_nbgrader_makes_of_solutions(tmp_path):
    # Also the determinism check: the committed copy came from an earlier run.
    fresh = tmp_path / "notebooks"
    fresh.mkdir()
    release.generate(fresh)
    stale = release.differences(fresh, ROOT / "notebooks", ASSIGNMENTS)
    assert not stale, ("notebooks/ differs from what nbgrader generates from solutions/: "
                       + ", ".join(f"notebooks/{p}" for p in stale) + ". " + RELEASE_HINT)


@pytest.mark.parametrize("path", all_notebooks(), ids=lambda p: str(p.relative_to(ROOT)))
def test_committed_notebooks_carry_no_outputs(path):
    nb = nbformat.read(path, as_version=4)
    dirty = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and (c.get("outputs") or c.get("execution_count") is not None)]
    assert not dirty, (f"{path.relative_to(ROOT)}: cells {dirty} have outputs or execution counts; "
                       "clear them (Edit > Clear Outputs of All Cells) before committing")


def test_released_notebooks_hold_no_solutions_or_hidden_tests():
    for name in ASSIGNMENTS:
        path = ROOT / "notebooks" / name / f"{name}.ipynb"
        if not path.exists():
            pytest.fail(f"notebooks/{name}/{name}.ipynb is missing. {RELEASE_HINT}")
        text = path.read_text()
        for marker in ("BEGIN SOLUTION", "BEGIN HIDDEN TESTS", "BEGIN MARK SCHEME"):
            assert marker not in text, f"notebooks/{name} contains '{marker}'. {RELEASE_HINT}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_graded_cells_have_complete_metadata(name):
    nb = solution(name)
    problems = []
    ids = Counter(nbmeta(c).get("grade_id") for c in nb.cells if nbmeta(c))
    problems += [f"grade_id {gid!r} is used by {n} cells (copied cell?)"
                 for gid, n in ids.items() if n > 1]
    for i, cell in enumerate(nb.cells):
        m, k = nbmeta(cell), kind(cell)
        where = f"cell {i} ({m.get('grade_id', 'no grade_id')})"
        has_solution = "BEGIN SOLUTION" in cell.source
        has_hidden = "BEGIN HIDDEN TESTS" in cell.source
        if m:
            if m.get("schema_version") != 3:
                problems.append(f"{where}: nbgrader schema_version should be 3")
            if not m.get("grade_id"):
                problems.append(f"{where}: graded or locked cell without a grade_id")
        if k in ("test", "written") and not float(m.get("points") or 0) > 0:
            problems.append(f"{where}: a graded cell needs points > 0")
        if k == "test" and (cell.cell_type != "code" or not m.get("locked")):
            problems.append(f"{where}: a test cell must be a locked code cell")
        if k == "answer" and cell.cell_type != "code":
            problems.append(f"{where}: an autograded answer must be a code cell")
        if k == "written" and cell.cell_type != "markdown":
            problems.append(f"{where}: a written answer must be a markdown cell")
        if k in ("answer", "written") and not has_solution:
            problems.append(f"{where}: solution cell without ### BEGIN SOLUTION / ### END SOLUTION")
        if has_solution and k not in ("answer", "written"):
            problems.append(f"{where}: solution markers in a cell that is not a solution cell")
        if has_hidden and k != "test":
            problems.append(f"{where}: hidden tests in a cell that is not a test cell")
    assert not problems, f"solutions/{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_every_test_cell_raises_on_failure(name):
    problems = []
    for cell in solution(name).cells:
        if kind(cell) != "test":
            continue
        gid = nbmeta(cell)["grade_id"]
        problems += [f"{gid}: {p}" for p in weak_test_reasons(cell.source)]
        # The learner's copy must still test something: visible tests give feedback.
        problems += [f"{gid} (visible part): {p}" for p in weak_test_reasons(strip_hidden(cell.source))]
    assert not problems, f"solutions/{name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_each_assignment_has_autograded_and_written_exercises(name):
    kinds = Counter(kind(c) for c in solution(name).cells)
    assert kinds["answer"] >= 2 and kinds["test"] >= 2, (
        f"{name}: {kinds['answer']} autograded answers and {kinds['test']} test cells; "
        "a lesson has at least two autograded exercises")
    assert kinds["written"] >= 1, f"{name}: no written answer graded by hand"


def test_bad_test_cells_are_recognised():
    """The rule above catches the patterns that score wrong code full marks."""
    assert weak_test_reasons("torch.allclose(a, b)")                      # bare expression
    assert weak_test_reasons("x = f(1)")                                  # tests nothing
    assert weak_test_reasons("check_f(f)\nresult")                        # ends in a value
    assert not weak_test_reasons("from m import check_f\ncheck_f(f)")
    assert not weak_test_reasons("assert f(1) == 2\n### BEGIN HIDDEN TESTS\nassert f(2) == 3\n"
                                  "### END HIDDEN TESTS")
