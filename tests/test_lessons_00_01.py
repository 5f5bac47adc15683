"""Structure of the lesson 00 and 01 source notebooks: nbgrader metadata as
CONTRIBUTING.md's table says, short test cells that re-import their check, no
outputs committed, an exploration cell; and (slow) that each runs top to bottom."""
import os
import re
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
LESSONS = {
    "00_welcome": {"one_hot": None, "test_one_hot": 2, "embed": None, "test_embed": 2,
                   "answer_one_hot_lookup": 2},
    "01_rnn": {"rnn_step": None, "test_rnn_step": 3, "rnn_forward": None, "test_rnn_forward": 3,
               "next_token_probs": None, "test_next_token_probs": 2,
               "answer_parameter_sharing": 2, "answer_fading_memory": 1},
}


def load(name):
    return nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)


def graded(nb):
    return [c for c in nb.cells if "nbgrader" in c.metadata]


@pytest.mark.parametrize("name", LESSONS)
def test_grade_ids_and_points(name):
    nb = load(name)
    nbformat.validate(nb)
    got = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.get("points") for c in graded(nb)}
    assert got == LESSONS[name]
    assert len([c for c in graded(nb)]) == len(got)  # grade_ids are unique


@pytest.mark.parametrize("name", LESSONS)
def test_metadata_follows_the_house_table(name):
    for cell in graded(load(name)):
        m = cell.metadata.nbgrader
        assert m.schema_version == 3
        kind = (m.grade, m.solution, m.locked)
        if cell.source.lstrip().startswith("from rnncourse.checks"):
            assert kind == (True, False, True) and cell.cell_type == "code"
        elif cell.cell_type == "code":
            assert kind == (False, True, False)
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        else:
            assert kind == (True, True, False)
            assert "### BEGIN SOLUTION" in cell.source


@pytest.mark.parametrize("name", LESSONS)
def test_test_cells_reimport_and_raise(name):
    for cell in graded(load(name)):
        if not cell.metadata.nbgrader.grade:
            continue
        if cell.cell_type == "markdown":
            continue
        lines = cell.source.splitlines()
        check = re.match(r"from rnncourse\.checks\.\w+ import (check_\w+)$", lines[0]).group(1)
        assert lines[1] == f"{check}({check[len('check_'):]})"  # the visible test
        assert lines[2:] == ["### BEGIN HIDDEN TESTS", f"{check}({check[len('check_'):]}, hidden=True)",
                             "### END HIDDEN TESTS"]


@pytest.mark.parametrize("name", LESSONS)
def test_committed_without_outputs(name):
    for cell in load(name).cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def test_lesson_01_has_a_tagged_exploration_and_a_static_figure():
    cells = load("01_rnn").cells
    tagged = [i for i, c in enumerate(cells) if "exploration" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "trajectory_explorer()" in cells[tagged[0]].source
    assert any("static_figure(" in c.source for c in cells[:tagged[0]])


@pytest.mark.slow
@pytest.mark.parametrize("name", LESSONS)
def test_solution_runs_top_to_bottom(name, monkeypatch):
    monkeypatch.setenv("RNNCOURSE_FAST", "1")
    nb = load(name)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "solutions" / name)}}).execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error"
            assert not (out.output_type == "stream" and out.name == "stderr"), out.text
