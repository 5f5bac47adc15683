"""The explorer's gallery (``course.py explore``, ``rnncourse.gallery``) as the explorer sees it.

The first test checks the gallery's pages against the lesson map without a browser.
The browser test starts the gallery the way ``course.py explore`` does (Voilà on
the built ``.gallery`` folder) on a free loopback port, opens the landing page and
every exploration page in headless Chromium, finds no error output and no
"Error displaying widget", moves a slider on each page and sees the figure change.
Screenshots and the measured times (server start, each page's time to its first
interactive figure) go to ``test-artifacts/gallery/``. The server and its kernels
are stopped whatever happens.
"""
from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from _lab_page import WIDGET_FAILURES
from _lab_server import ROOT, _children, _die_with_parent, _free_port, _isolated_env, _course_module
from test_browser import CHROMIUM_ARGS, find_chromium

from rnncourse import gallery
from rnncourse.lessons import LESSONS

ARTIFACTS = ROOT / "test-artifacts" / "gallery"
_STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'
# What a figure shows: the src of every image in the widget's Output.
# What a widget shows: the figures it draws into Output widgets, and the HTML it writes
# (lesson 08's explorer shows coloured samples, not a figure)
_VIEW_JS = ("() => Array.from(document.querySelectorAll('.widget-output img')).map(i => i.src).join('|')"
            " + '#' + Array.from(document.querySelectorAll('.widget-html-content')).map(e => e.innerHTML).join('|')")
_DONE_JS = ("() => !document.getElementById('loading') || "
            "getComputedStyle(document.getElementById('loading')).display === 'none'")


def test_every_exploration_of_the_lesson_map_has_a_page(tmp_path):
    found = gallery.build(tmp_path, log=lambda *a: None)
    expected = [row.assignment for row in LESSONS if row.explore]
    assert sorted({e.lesson.assignment for e in found}) == expected
    index = json.loads((tmp_path / gallery.INDEX).read_text())
    listing = "".join(index["cells"][0]["source"])
    for e in found:
        nb = json.loads((tmp_path / e.page).read_text())
        code = "\n".join("".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code")
        assert "static_figure" in code and e.widget_code in code, e.page
        # a slice of the notebook: no exercise, no training
        assert "NotImplementedError" not in code and "fit(" not in code, e.page
        assert f'href="{e.page}"' in listing and e.description in listing
        assert "running Jupyter kernel" not in e.explanation
    assert listing.count("data:image/png;base64,") == len(found)


def test_a_new_lessons_exploration_needs_no_gallery_edit(tmp_path):
    """A lesson row with an explore module and a tagged cell is enough: the inputs the
    figure and the widget use are sliced from its notebook, the rest is left out."""
    import nbformat
    from rnncourse.lessons import Lesson
    row = Lesson("06_new", "a lesson written later", "lstm", explore=("lstm",))
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("from rnncourse.explore.lstm import gate_explorer, static_figure\n"
                                  "import matplotlib.pyplot as plt"),
        nbformat.v4.new_code_cell("T_SHOWN = 4\nunused = 1"),
        nbformat.v4.new_code_cell("def exercise():\n    raise NotImplementedError"),
        nbformat.v4.new_code_cell("fig = static_figure(T=T_SHOWN)\nplt.show()"),
        nbformat.v4.new_markdown_cell("Move the gates (it needs a running Jupyter kernel)."),
        nbformat.v4.new_code_cell("gate_explorer(T=T_SHOWN)", metadata={"tags": ["exploration"]}),
    ])
    (tmp_path / row.assignment).mkdir()
    nbformat.write(nb, tmp_path / row.assignment / f"{row.assignment}.ipynb")
    [e] = gallery.explorations([row], tmp_path)
    assert e.page == "06_new.ipynb" and e.module == "lstm"
    assert e.explanation == "Move the gates."
    assert e.setup_code == ["import matplotlib.pyplot as plt", "T_SHOWN = 4"]
    assert e.widget_code == "gate_explorer(T=T_SHOWN)"
    assert gallery.thumbnail(e).startswith(b"\x89PNG")


@pytest.fixture(scope="module")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]'")
    with sync_playwright() as p:
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


def _stop(proc: subprocess.Popen) -> None:
    kernels = _children(proc.pid)
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except (ProcessLookupError, PermissionError):
            break
        try:
            proc.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue
    for pid in kernels:  # kernels run in sessions of their own
        try:
            if b"ipykernel" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The gallery served as ``course.py explore`` serves it; yields (base url, timings)."""
    if importlib.util.find_spec("voila") is None:
        pytest.skip("voila is not installed: pip install -e '.[course]' (or python3 course.py setup)")
    tmp = tmp_path_factory.mktemp("gallery")
    timings = {}
    t0 = time.monotonic()
    explorations = gallery.build(tmp / "gallery", log=lambda *a: None)
    timings["build_s"] = time.monotonic() - t0
    _write_broken_page(tmp / "gallery" / BROKEN)
    port = _free_port()
    cmd = gallery.voila_command(sys.executable, tmp / "gallery", port) + _course_module().kernel_transport_args()
    base = f"http://127.0.0.1:{port}/"
    log = tmp / "voila.log"
    t0 = time.monotonic()
    with open(log, "wb") as log_file:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_isolated_env(tmp), stdin=subprocess.DEVNULL,
                                stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=_die_with_parent)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"voila exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
            try:
                urllib.request.urlopen(base + "voila/tree", timeout=2).close()
                break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"voila did not answer in 120 s:\n{log.read_text()[-4000:]}")
                time.sleep(0.2)
        timings["server_start_s"] = time.monotonic() - t0
        yield base, explorations, timings, log
    finally:
        _stop(proc)


BROKEN = "_broken.ipynb"  # not linked from the landing page; proves _problems sees errors


def _write_broken_page(path: Path) -> None:
    import nbformat
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("import sys\nprint('drawn', file=sys.stderr)"),
        nbformat.v4.new_code_cell("from IPython.display import display\n"
                                  "display({'application/vnd.jupyter.widget-view+json': "
                                  "{'model_id': 'f' * 32, 'version_major': 2, 'version_minor': 0}}, raw=True)"),
        nbformat.v4.new_code_cell("raise ValueError('broken on purpose')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, path)


def _problems(page) -> list[str]:
    text = page.locator("body").inner_text()
    # Voilà leaves "Loading widget..." where a widget's model never arrives.
    found = [f"shows {w!r}" for w in (*WIDGET_FAILURES, "Loading widget...") if w in text]
    if "Traceback" in text:
        found.append("shows a traceback")
    found += [f"error output: {t[:500]}" for t in page.locator(_STDERR).all_inner_texts()]
    return found


def _move_slider(page) -> str:
    handle = page.locator(".widget-slider .noUi-handle").first
    handle.scroll_into_view_if_needed()
    value = lambda: handle.get_attribute("aria-valuetext") or handle.get_attribute("aria-valuenow")
    start = value()
    for key in ("ArrowRight", "ArrowLeft"):
        handle.focus()
        page.keyboard.press(key)
        page.wait_for_timeout(300)
        if value() != start:
            break
    return f"{start} -> {value()}"


@pytest.mark.browser
@pytest.mark.slow
def test_gallery_in_the_browser(chromium, server):
    base, explorations, timings, log = server
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    context = chromium.new_context(viewport={"width": 1300, "height": 1000})
    page = context.new_page()
    page_errors = []
    page.on("pageerror", lambda e: page_errors.append(str(e)))
    pages = {}
    try:
        t0 = time.monotonic()
        response = page.goto(base + f"voila/render/{gallery.INDEX}", timeout=120_000)
        assert response.ok, response.status
        links = page.locator(".gallery-item a:has(img)")
        links.first.wait_for(timeout=60_000)
        timings["landing_page_s"] = time.monotonic() - t0
        hrefs = sorted({a.get_attribute("href") for a in links.all()})
        assert hrefs == sorted(e.page for e in explorations)
        assert all(img.evaluate("i => i.complete && i.naturalWidth > 0")
                   for img in page.locator(".gallery-item img").all()), "a thumbnail did not load"
        assert not _problems(page), _problems(page)
        page.screenshot(path=str(ARTIFACTS / "index.png"), full_page=True)

        for e in explorations:
            name = e.page.removesuffix(".ipynb")
            t0 = time.monotonic()
            response = page.goto(base + f"voila/render/{e.page}", timeout=120_000)
            assert response.ok, response.status
            # The progress indicator: Voilà's spinner ("Running ... / Executing cell n of m").
            assert 'id="loading"' in response.text(), f"{name}: no progress indicator"
            # every cell has run (Voila's progress line is gone) and the widget is drawn
            page.wait_for_function(f"() => ({_DONE_JS})() && ({_VIEW_JS})().length > 1 && "
                                   "document.querySelector('.widget-slider .noUi-handle')",
                                   timeout=120_000)
            first_figure = time.monotonic() - t0
            # Hidden sources: no code cell's input is on the page.
            assert page.locator(".jp-InputArea-editor, .jp-CodeMirrorEditor").count() == 0, name
            assert "static_figure" not in page.locator("body").inner_text(), f"{name}: code shown"
            static = page.evaluate("() => Array.from(document.querySelectorAll('.jp-OutputArea-output img'))"
                                   ".filter(i => !i.closest('.widget-output')).length")
            assert static >= 1, f"{name}: no static figure"
            problems = _problems(page)
            assert not problems, f"{name}: {problems}"
            page.screenshot(path=str(ARTIFACTS / f"{name}-before.png"), full_page=True)
            before = page.evaluate(_VIEW_JS)
            moved = _move_slider(page)
            page.wait_for_function(f"(before) => {{ const now = ({_VIEW_JS})(); "
                                   "return now.length > 1 && now !== before; }", arg=before,
                                   timeout=60_000)
            problems = _problems(page)
            assert not problems, f"{name} after moving the slider ({moved}): {problems}"
            page.screenshot(path=str(ARTIFACTS / f"{name}-after.png"), full_page=True)
            pages[name] = {"first_interactive_figure_s": round(first_figure, 2), "slider": moved}
        assert not page_errors, page_errors
        for name, times in pages.items():
            # saved runs are loaded, nothing trains: usable within seconds, not minutes
            assert times["first_interactive_figure_s"] < 60, f"{name}: {times}"

        # The test of the test: a page with error output is seen as broken.
        page.goto(base + f"voila/render/{BROKEN}", timeout=120_000)
        page.wait_for_function(_DONE_JS, timeout=120_000)
        page.wait_for_timeout(1000)
        problems = _problems(page)
        page.screenshot(path=str(ARTIFACTS / "broken-page-is-caught.png"), full_page=True)
        assert any("error output" in p for p in problems), problems
        assert any("traceback" in p for p in problems), problems
        assert any("Loading widget" in p for p in problems), problems
    finally:
        context.close()
        summary = {"build_s": round(timings.get("build_s", 0), 2),
                   "server_start_s": round(timings.get("server_start_s", 0), 2),
                   "landing_page_s": round(timings.get("landing_page_s", 0), 2), "pages": pages}
        (ARTIFACTS / "timings.json").write_text(json.dumps(summary, indent=2) + "\n")
        print(json.dumps(summary, indent=2))
