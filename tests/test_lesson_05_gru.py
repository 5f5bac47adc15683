"""Structure of the lesson 05 source notebook: grade_ids and points, test cells
that re-import their check, an exploration cell after its static figure, the
live training run off in fast mode, and no outputs committed."""
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {"gru_step": None, "test_gru_step": 4, "count_parameters": None, "test_count_parameters": 3,
            "answer_reset_placement": 2, "answer_update_gate": 1}


def load():
    return nbformat.read(ROOT / "solutions" / "05_gru" / "05_gru.ipynb", as_version=4)


def test_grade_ids_and_points():
    nb = load()
    nbformat.validate(nb)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    got = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.get("points") for c in graded}
    assert got == EXPECTED and len(graded) == len(got)


def test_test_cells_reimport_and_raise():
    for cell in load().cells:
        m = cell.metadata.get("nbgrader", {})
        if not m.get("grade") or cell.cell_type != "code":
            continue
        lines = cell.source.splitlines()
        check = re.match(r"from rnncourse\.checks\.gru import (check_\w+)$", lines[0]).group(1)
        fn = check[len("check_"):]
        assert lines[1:] == [f"{check}({fn})", "### BEGIN HIDDEN TESTS", f"{check}({fn}, hidden=True)",
                             "### END HIDDEN TESTS"]


def test_exploration_follows_its_static_figure():
    cells = load().cells
    tagged = [i for i, c in enumerate(cells) if "exploration" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "comparison_explorer(" in cells[tagged[0]].source
    assert any("static_figure(" in c.source for c in cells[:tagged[0]])


def test_live_training_is_off_in_fast_mode():
    sources = [c.source for c in load().cells if c.cell_type == "code"]
    live = [s for s in sources if "train_one(" in s]
    assert live and all("LIVE = not rnncourse.fast_mode()" in s for s in live)


def test_committed_without_outputs():
    for cell in load().cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
