"""Structure of the lesson 03 source notebook: graded cells and points, the
exploration with its static figure, and a live training run that is off by
default and always off in fast mode (grading, tests)."""
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
NAME = "03_vanishing_exploding"
GRADED = {"jacobian_norms": None, "test_jacobian_norms": 3, "clip_grad_norm_": None,
          "test_clip_grad_norm_": 3, "answer_clipping_vs_vanishing": 2, "answer_lstm_gradients": 2}


def load():
    return nbformat.read(ROOT / "solutions" / NAME / f"{NAME}.ipynb", as_version=4)


def test_grade_ids_and_points():
    nb = load()
    nbformat.validate(nb)
    graded = [c for c in nb.cells if "nbgrader" in c.metadata]
    got = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.get("points") for c in graded}
    assert got == GRADED and len(graded) == len(got)


def test_exploration_is_tagged_and_has_a_static_figure_before_it():
    cells = load().cells
    tagged = [i for i, c in enumerate(cells) if "exploration" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "gradient_explorer()" in cells[tagged[0]].source
    assert any("static_figure(" in c.source for c in cells[:tagged[0]])


def test_live_run_is_optional_and_off_in_fast_mode():
    sources = [c.source for c in load().cells if c.cell_type == "code"]
    assert any("LIVE_RUN = False" in s for s in sources)
    live = [s for s in sources if "adding.train(" in s]
    assert live and all("if LIVE_RUN and not rnncourse.fast_mode():" in s for s in live)
    assert any('adding.load("lstm"' in s for s in sources)  # the lesson plots the saved runs


def test_committed_without_outputs():
    for cell in load().cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
