"""Structure of the lesson 04 source notebook, beyond what test_release checks for
every lesson: its graded cells and points, test cells that re-import their check,
the exploration with its static figure, solutions that use no recurrent module,
and the order of the sections the prose refers to."""
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NAME = "04_lstm"
GRADED = {"lstm_step": None, "test_lstm_step": 3, "lstm_forward": None, "test_lstm_forward": 3,
          "peephole_lstm_step": None, "test_peephole_lstm_step": 2,
          "answer_gradient_flow": 2, "answer_gate_settings": 1}


def load():
    return nbformat.read(ROOT / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)


def grade_id(cell):
    return cell.metadata.get("nbgrader", {}).get("grade_id")


def test_grade_ids_and_points():
    nb = load()
    nbformat.validate(nb)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    got = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.get("points") for c in graded}
    assert got == GRADED and len(graded) == len(got)


def test_test_cells_reimport_their_check_and_call_it_twice():
    tests = 0
    for cell in load().cells:
        m = cell.metadata.get("nbgrader", {})
        if not m.get("grade") or m.get("solution"):
            continue
        tests += 1
        lines = cell.source.splitlines()
        check = re.match(r"from rnncourse\.checks\.lstm import (check_\w+)$", lines[0]).group(1)
        fn = check[len("check_"):]
        assert lines[1:] == [f"{check}({fn})", "### BEGIN HIDDEN TESTS", f"{check}({fn}, hidden=True)",
                             "### END HIDDEN TESTS"]
    assert tests == 3


def test_exploration_is_tagged_and_drawn_statically_first():
    cells = load().cells
    tagged = [i for i, c in enumerate(cells) if "exploration" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and cells[tagged[0]].source.strip() == "gate_explorer()"
    assert any("static_figure(" in c.source for c in cells[:tagged[0]])


def test_solutions_use_tensor_operations_only():
    for cell in load().cells:
        if grade_id(cell) in ("lstm_step", "lstm_forward", "peephole_lstm_step"):
            assert not re.search(r"nn\.LSTM|LSTMCell|rnncourse\.|lstm_cell", cell.source), grade_id(cell)


def test_each_test_follows_its_exercise_and_the_forward_calls_the_step():
    ids = [grade_id(c) for c in load().cells if grade_id(c)]
    for fn in ("lstm_step", "lstm_forward", "peephole_lstm_step"):
        assert ids[ids.index(fn) + 1] == f"test_{fn}"
    forward = next(c.source for c in load().cells if grade_id(c) == "lstm_forward")
    assert "lstm_step(" in forward  # the lesson tells the learner to reuse the step
