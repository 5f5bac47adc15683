"""The course as a learner sees it: JupyterLab in headless Chromium.

Widget courses fail most often in the browser only ("Error displaying widget", a
figure that never redraws), where the other tests cannot see. This test starts the
course's JupyterLab (the command ``course.py lab`` runs) on a temporary copy of the
course, and for every solution notebook with an exploration (a cell tagged
``exploration``): runs all cells, checks that nothing on the page is an error,
operates every control of each exploration and sees its figure or text change.
A small fixture notebook goes through the same steps, so the test proves the
widget front end matches the kernel's ipywidgets before any lesson has a widget.

Screenshots go to ``test-artifacts/browser/``. Chromium comes from the system
(Debian's ``chromium`` package; ``.ci/run`` installs it); without one the tests skip.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import nbformat
import pytest

try:
    from playwright.sync_api import expect
except ImportError:  # the chromium fixture skips with the reason
    expect = None

import _lab_fixtures as fixtures
from _lab_fixtures import EXPLORATION_TAG
from _lab_page import NotebookPage
from _lab_server import ROOT, VENV_PYTHON, copy_course, running_lab

pytestmark = pytest.mark.browser

ARTIFACTS = ROOT / "test-artifacts" / "browser"
# Chromium under root in a container, with no network: the flags the machine needs.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def find_chromium() -> str | None:
    """A Chromium to drive: $RNNCOURSE_CHROMIUM, else one on the PATH (Playwright's own
    download needs the internet, so the system's browser is the one to count on)."""
    candidates = [os.environ.get("RNNCOURSE_CHROMIUM"), shutil.which("chromium"),
                  shutil.which("chromium-browser"), shutil.which("google-chrome")]
    return next((c for c in candidates if c and Path(c).exists()), None)


def exploration_cells(path: Path) -> list[int]:
    nb = json.loads(path.read_text())
    return [i for i, cell in enumerate(nb["cells"])
            if EXPLORATION_TAG in cell.get("metadata", {}).get("tags", [])]


def notebooks_with_explorations() -> list[str]:
    """Solution notebooks (relative to the course root) that have an exploration."""
    return sorted(str(p.relative_to(ROOT)) for p in (ROOT / "solutions").glob("*/*.ipynb")
                  if exploration_cells(p))


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
        # Playwright's own download, where someone could make it, comes last.
        executable = find_chromium() or next(
            (c for c in [p.chromium.executable_path] if c and Path(c).exists()), None)
        if executable is None:
            pytest.skip("no Chromium found: install Debian's chromium (apt-get install chromium) "
                        "or set RNNCOURSE_CHROMIUM to a Chromium binary")
        browser = p.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    if not VENV_PYTHON.exists():
        pytest.skip("no course environment: run python3 course.py setup")
    tmp = tmp_path_factory.mktemp("lab")
    course_dir = copy_course(tmp / "course")
    (course_dir / "fixtures").mkdir()
    nbformat.write(fixtures.working(), course_dir / "fixtures" / "widget_fixture.ipynb")
    nbformat.write(fixtures.broken(), course_dir / "fixtures" / "broken_widgets.ipynb")
    with running_lab(course_dir, tmp) as server:
        yield server


@pytest.fixture
def page(chromium, lab):
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    try:
        yield page
    finally:
        context.close()


def check_notebook(page, lab, path: str, name: str) -> tuple[list, list]:
    """Run all of `path` in the lab; every exploration must render and respond."""
    nb = NotebookPage(page, lab, path)
    nb.open()
    try:
        cells = nb.run_all()
        problems = nb.problems(cells)
        assert not problems, f"{path}:\n" + "\n".join(problems)
        tagged = [c["index"] for c in cells if EXPLORATION_TAG in c["tags"]]
        assert tagged, f"{path}: no cell tagged {EXPLORATION_TAG!r}"
        results = [nb.explore(index, ARTIFACTS, f"{name}-exploration{k}")
                   for k, index in enumerate(tagged, 1)]
        # What was operated and what was seen, next to the screenshots.
        (ARTIFACTS / f"{name}.json").write_text(json.dumps(
            {"notebook": path, "explorations": [vars(r) for r in results]}, indent=1))
        # Operating the controls must not have broken anything either.
        problems = nb.problems(nb.cells())
        assert not problems, f"{path} after operating its explorations:\n" + "\n".join(problems)
        return results, nb.cells()
    finally:
        nb.shutdown_kernel()


def test_lab_lands_in_notebooks(page, lab):
    page.goto(lab.url(""))
    page.wait_for_url("**/lab/tree/notebooks**", timeout=60_000)
    # The file browser opens on notebooks/ (its breadcrumbs name the folder).
    expect(page.locator(".jp-FileBrowser .jp-BreadCrumbs").first).to_contain_text(
        "notebooks", timeout=60_000)


def test_fixture_widget_in_lab(page, lab):
    results, cells = check_notebook(page, lab, "fixtures/widget_fixture.ipynb", "fixture")
    # The kernel JupyterLab starts is the course's environment.
    printed = "".join(o.get("text", "") for o in cells[0]["outputs"]).strip()
    venv = VENV_PYTHON.parents[1]
    assert Path(printed) == venv, f"the kernel runs in {printed}, not in the course's {venv}"
    # The training loop's progress bar is a widget in JupyterLab, not text.
    assert page.locator('[data-rnncourse-cell="1"] .widget-hprogress').count() == 1
    assert results[0].controls and all(Path(s).exists() for s in results[0].screenshots)


@pytest.mark.parametrize("path", notebooks_with_explorations())
def test_exploration_in_lab(page, lab, path):
    # The lab serves a temporary copy of the course: the committed notebook never changes.
    results, _ = check_notebook(page, lab, path, Path(path).stem)
    assert len(results) == len(exploration_cells(ROOT / path))


def test_browser_test_sees_broken_widgets(page, lab):
    """The detectors themselves: each breakage in the broken fixture is reported."""
    nb = NotebookPage(page, lab, "fixtures/broken_widgets.ipynb")
    nb.open()
    try:
        problems = "\n".join(nb.problems(nb.run_all()))
        assert "model not found" in problems                        # a view without its model
        assert "error box" in problems                              # a front end that does not match
        assert f"cell {fixtures.BROKEN_RAISES} raised RuntimeError" in problems
        with pytest.raises(AssertionError, match="shows an error"):  # a callback that raises
            nb.explore(fixtures.BROKEN_CALLBACK, ARTIFACTS, "broken-callback", change_timeout_s=20)
        with pytest.raises(AssertionError, match="did not change"):  # a slider wired to nothing
            nb.explore(fixtures.BROKEN_UNWIRED, ARTIFACTS, "broken-unwired", change_timeout_s=3)
    finally:
        nb.shutdown_kernel()
