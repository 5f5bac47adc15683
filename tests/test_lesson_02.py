"""Structure of the lesson 02 source notebook, beyond what test_release checks for
every lesson: its graded cells and points, test cells that re-import their check,
the exploration with its static figure, and no hand-written training loop to shrink
(the lesson trains nothing, so it needs no fast-mode branch)."""
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NAME = "02_bptt"
GRADED = {"rnn_backward": None, "test_rnn_backward": 4, "batchify": None, "test_batchify": 2,
          "tbptt_batches": None, "test_tbptt_batches": 2, "answer_detach": 2}


def load():
    return nbformat.read(ROOT / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)


def test_grade_ids_and_points():
    nb = load()
    nbformat.validate(nb)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    got = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.get("points") for c in graded}
    assert got == GRADED and len(graded) == len(got)


def test_test_cells_reimport_their_check_and_call_it_twice():
    for cell in load().cells:
        m = cell.metadata.get("nbgrader", {})
        if not m.get("grade") or m.get("solution"):
            continue
        lines = cell.source.splitlines()
        check = re.match(r"from rnncourse\.checks\.bptt import (check_\w+)$", lines[0]).group(1)
        fn = check[len("check_"):]
        assert lines[1:] == [f"{check}({fn})", "### BEGIN HIDDEN TESTS", f"{check}({fn}, hidden=True)",
                             "### END HIDDEN TESTS"]


def test_exploration_is_tagged_and_drawn_statically_first():
    cells = load().cells
    tagged = [i for i, c in enumerate(cells) if "exploration" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and cells[tagged[0]].source.strip() == "contribution_explorer()"
    assert any("static_figure(" in c.source for c in cells[:tagged[0]])


def test_answer_cell_for_rnn_backward_does_not_use_autograd():
    # the instructor's solution must pass the rule it teaches
    src = next(c.source for c in load().cells
               if c.metadata.get("nbgrader", {}).get("grade_id") == "rnn_backward")
    assert ".backward(" not in src and "autograd" not in src
