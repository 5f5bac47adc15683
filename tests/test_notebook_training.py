"""Notebooks train through rnncourse.train.fit (CONTRIBUTING, "Training loops and plots").

A loop written out in a notebook has no progress bar, is not silent under grading
and the test suite, and handles neither the device nor clipping the way the others
do. The one exception is a loop that *is* the exercise: code the learner writes
(an nbgrader answer cell), such as lesson 08's training step.
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from notebook_rules import kind

ROOT = Path(__file__).resolve().parents[1]
SOLUTIONS = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "solutions").glob("*/*.ipynb"))


def _python(source: str) -> str:
    # IPython magics and shell escapes are not Python; they never hold a training loop.
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def training_loops(source: str) -> list[int]:
    """Line numbers of loops that call both .backward() and .step(): a hand-written
    training loop. (A loop that only back-propagates, measuring gradients for each
    sequence length say, is an experiment, not training.)"""
    try:
        tree = ast.parse(_python(source))
    except SyntaxError:
        return []  # not this test's business: the notebook tests run every cell
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.While)):
            called = {n.func.attr for n in ast.walk(node)
                      if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)}
            if {"backward", "step"} <= called:
                lines.append(node.lineno)
    return lines


def test_the_detector_sees_a_loop():
    assert training_loops("for x, y in data:\n    loss = f(x, y)\n    loss.backward()\n    opt.step()") == [1]
    assert training_loops("history = fit(model, data, loss_fn, opt)") == []
    assert training_loops("%matplotlib inline\nloss.backward()") == []  # one step is not a loop
    assert training_loops("for T in (10, 100):\n    rnn(x[:, :T]).sum().backward()") == []


@pytest.mark.parametrize("path", SOLUTIONS)
def test_notebooks_train_through_fit(path):
    cells = json.loads((ROOT / path).read_text())["cells"]
    found = [f"cell {i}, line {line}" for i, cell in enumerate(cells)
             if cell["cell_type"] == "code" and kind(cell) != "answer"
             for line in training_loops("".join(cell["source"]))]
    assert not found, (f"{path}: a hand-written training loop at {', '.join(found)}; train with "
                       "rnncourse.train.fit (progress bar, silent in fast mode, device, clipping)")
