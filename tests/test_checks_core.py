"""The shared check machinery: case sizes, and how a failed check looks in a
real Jupyter kernel (short, still an error output, no test source)."""
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from rnncourse.checks.core import CheckFailed, distinct_sizes, shape_text

ROOT = Path(__file__).resolve().parents[1]


def test_sizes_are_pairwise_different():
    for seed in range(50):
        sizes = distinct_sizes(torch.Generator().manual_seed(seed), "BTIH")
        assert len(set(sizes.values())) == 4


def test_shape_text():
    assert shape_text(("B", "T+1", "H"), {"B": 3, "T": 4, "H": 5}) == "(B, T+1, H) = (3, 5, 5)"


def test_check_failed_renders_as_one_line():
    assert CheckFailed("case 1: wrong")._render_traceback_() == ["\x1b[0;31mCheckFailed\x1b[0m: case 1: wrong"]
    assert isinstance(CheckFailed("x"), AssertionError)


def test_failed_check_in_a_kernel_is_a_short_error_output():
    test_cell = (
        "from rnncourse.checks.rnn import check_rnn_step\n"
        "SECRET_TEST_SOURCE = 1\n"
        "check_rnn_step(rnn_step)\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import torch\n"
                                  "def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
                                  "    return torch.tanh(x_t @ W_ih.T + h_prev @ W_hh.T)\n"),
        nbformat.v4.new_code_cell(test_cell),
        nbformat.v4.new_code_cell("def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
                                  "    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)\n"),
        nbformat.v4.new_code_cell(test_cell),
    ]
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    failed, passed = nb.cells[1].outputs, nb.cells[3].outputs
    assert [o["output_type"] for o in failed] == ["error"]  # nbgrader scores this cell 0
    err = failed[0]
    assert err["ename"] == "CheckFailed"
    assert "both biases are left out" in err["evalue"]
    assert len(err["traceback"]) == 1
    assert "SECRET_TEST_SOURCE" not in "".join(err["traceback"])
    assert [o["output_type"] for o in passed] == ["stream"]
    assert passed[0]["name"] == "stdout" and "all 2 visible cases pass" in passed[0]["text"]
