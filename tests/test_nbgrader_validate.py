"""Every solution notebook passes all its tests and every released notebook
fails all of them, as nbgrader's validator sees it.

``nbgrader validate`` exits 0 even when tests fail, so this uses its Python
API (nbgrader.validator.Validator) with the course's nbgrader_config.py.
Each notebook is executed exactly once per test (about a minute on 2 cores):
the solution in one test, the release in the other, one after the other.
Run with -s to see how long each notebook takes.
"""
from __future__ import annotations

import time

import pytest
from nbgrader.validator import Validator
from traitlets.config.loader import PyFileConfigLoader

from classroom.course import release
from notebook_rules import ROOT

pytestmark = pytest.mark.slow
ASSIGNMENTS = release.assignments()


def validator(**options) -> Validator:
    """nbgrader's validator with the course's settings (timeout per cell, ...).

    Unlike autograde it scores stderr output as a failure, so a solution whose
    test cells warn fails here: test cells must be quiet when the answer is right.
    """
    config = PyFileConfigLoader("nbgrader_config.py", path=str(ROOT)).load_config()
    for key, value in options.items():
        setattr(config.Validator, key, value)
    return Validator(config=config)


def run(path, **options) -> dict:
    start = time.perf_counter()
    results = validator(**options).validate(str(path))
    print(f"\n{path.relative_to(ROOT)}: executed in {time.perf_counter() - start:.1f} s")
    return results


def describe(cells: list) -> str:
    return "\n\n".join(c["source"] + ("\n--> " + c["raw_error"] if "raw_error" in c else "")
                       for c in cells)


@pytest.fixture(autouse=True)
def fast_mode(monkeypatch):
    # Training cells shrink under RNNCOURSE_FAST (NBGRADER_EXECUTION is also set
    # by the validator itself).
    monkeypatch.setenv("RNNCOURSE_FAST", "1")


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_solution_passes_all_its_tests(name):
    results = run(ROOT / "solutions" / name / f"{name}.ipynb")
    assert "type_changed" not in results and "changed" not in results, results
    failed = results.get("failed", [])
    assert not failed, f"solutions/{name}: tests fail on the solution:\n{describe(failed)}"


@pytest.mark.parametrize("name", ASSIGNMENTS)
def test_release_fails_all_its_tests(name):
    path = ROOT / "notebooks" / name / f"{name}.ipynb"
    if not path.exists():
        pytest.fail(f"notebooks/{name}/{name}.ipynb is missing: run `python3 course.py release`.")
    # invert: list the test cells that pass; on the untouched release none may.
    results = run(path, invert=True)
    assert "changed" not in results, f"notebooks/{name} differs from its checksums: {results}"
    passed = results.get("passed", [])
    assert not passed, (f"notebooks/{name}: these tests pass with no code written, "
                        f"so they give free marks:\n{describe(passed)}")
