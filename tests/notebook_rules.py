"""What a graded notebook of this course must look like to nbgrader.

Plain functions over nbformat notebooks, shared by the release and grading
tests. nbgrader metadata schema 3; see CONTRIBUTING.md, "Graded cells".
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def nbmeta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def kind(cell) -> str | None:
    """'answer' (autograded learner code), 'test', 'written' (graded by hand),
    'readonly', or None for an ordinary cell."""
    m = nbmeta(cell)
    if not m:
        return None
    if m.get("grade") and m.get("solution"):
        return "written"
    if m.get("grade"):
        return "test"
    if m.get("solution"):
        return "answer"
    if m.get("locked"):
        return "readonly"
    return None


def strip_hidden(source: str) -> str:
    """The test as the learner sees it: the hidden-test region removed."""
    out, inside = [], False
    for line in source.split("\n"):
        if "BEGIN HIDDEN TESTS" in line:
            inside = True
        elif "END HIDDEN TESTS" in line:
            inside = False
        elif not inside:
            out.append(line)
    return "\n".join(out)


def _is_check_call(node) -> bool:
    if not isinstance(node, ast.Call):
        return False
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
    return name.startswith("check_")


def weak_test_reasons(source: str) -> list[str]:
    """Why a test cell's code could score a wrong answer, or [] if it is sound.

    nbgrader gives full marks to a cell that does not raise, and reads a final
    bare expression as the score (a False or 0.0 there is not an error), so a
    test must assert or call a ``check_*`` function that raises, and must not
    end in an expression other than such a call (which returns None).
    """
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"does not parse as Python: {e}"]
    problems = []
    if not any(isinstance(n, ast.Assert) or _is_check_call(n) for n in ast.walk(tree)):
        problems.append("neither asserts nor calls a check_* function")
    if tree.body and isinstance(tree.body[-1], ast.Expr) and not _is_check_call(tree.body[-1].value):
        problems.append("ends in a bare expression, which nbgrader would read as a score")
    return problems


def all_notebooks() -> list[Path]:
    """Every committed-side notebook: solutions/ and notebooks/ (checkpoints aside)."""
    return sorted(p for folder in ("solutions", "notebooks")
                  for p in (ROOT / folder).rglob("*.ipynb")
                  if ".ipynb_checkpoints" not in p.parts)
