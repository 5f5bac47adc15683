"""Drive one notebook in JupyterLab as a learner would, with Playwright.

The server runs with ``expose_app_in_browser`` so the test can use JupyterLab's own
objects (``window.jupyterapp``): its "Run All Cells" command, the kernel status and
the cell models with their outputs. What the learner *sees* (widgets, figures,
error boxes) is read from the page itself.
"""
from __future__ import annotations

import re
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

# Text the widget manager puts on the page when a widget cannot be shown.
WIDGET_FAILURES = ("Error displaying widget", "model not found", "Failed to load model class",
                   "Failed to load view class", "Failed to create view")

# The open notebook panel for `path`, found among the main area's widgets.
_PANEL_JS = """(path) => {
  const app = window.jupyterapp;
  if (!app) return null;
  return Array.from(app.shell.widgets('main')).find(w => w.context && w.context.path === path) || null;
}"""

_READY_JS = """([panelJs, path]) => {
  const panel = eval(panelJs)(path);
  if (!panel || !panel.content || !panel.sessionContext) return false;
  const kernel = panel.sessionContext.session && panel.sessionContext.session.kernel;
  return !!kernel && kernel.status === 'idle' && panel.content.widgets.length > 0;
}"""

# Start "Run All Cells" and remember when it has finished (it resolves once every
# cell has run, or the kernel has stopped at an error).
_RUN_ALL_JS = """([panelJs, path]) => {
  const app = window.jupyterapp, panel = eval(panelJs)(path);
  app.shell.activateById(panel.id);
  window.__rnncourseRunAll = {done: false};
  app.commands.execute('notebook:run-all-cells').then(
    ok => { window.__rnncourseRunAll = {done: true, ok: ok}; },
    err => { window.__rnncourseRunAll = {done: true, ok: false, error: String(err)}; });
  return true;
}"""

_RUN_DONE_JS = """([panelJs, path]) => {
  const panel = eval(panelJs)(path), state = window.__rnncourseRunAll;
  const kernel = panel.sessionContext.session.kernel;
  return !!state && state.done && kernel.status === 'idle';
}"""

# Per cell: its type, tags, execution count and outputs (nbformat JSON). Also marks
# each cell's DOM node with its index so Playwright can find it.
_CELLS_JS = """([panelJs, path]) => {
  const panel = eval(panelJs)(path);
  return panel.content.widgets.map((cell, i) => {
    cell.node.setAttribute('data-rnncourse-cell', String(i));
    const m = cell.model;
    return {
      index: i, type: m.type, tags: m.getMetadata('tags') || [],
      source: m.sharedModel.getSource(),
      executionCount: m.type === 'code' ? m.executionCount : null,
      outputs: m.type === 'code' ? m.outputs.toJSON() : [],
    };
  });
}"""

# What an exploration shows: figures (img src), text in Output and HTML widgets, SVG.
# Controls (sliders, their readouts) are left out: they change whatever the kernel does.
_SNAPSHOT_JS = """(cell) => {
  const area = cell.querySelector('.jp-Cell-outputArea') || cell;
  const parts = [];
  area.querySelectorAll('img').forEach(img => parts.push('img:' + img.src));
  area.querySelectorAll('.widget-output, .widget-html-content, svg').forEach(
    el => parts.push(el.tagName + ':' + el.innerHTML));
  return parts.join('\\n');
}"""

_STDERR_SELECTOR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

# Controls a learner can operate, in the order the test tries them.
CONTROLS = {
    "slider": ".widget-slider .noUi-handle",
    "dropdown": ".widget-dropdown select",
    "checkbox": ".widget-checkbox input[type=checkbox]",
    "toggle button": "button.widget-toggle-button:not(.widget-toggle-buttons button)",
    "option button": ".widget-toggle-buttons button:not(.mod-active)",
    "button": "button.widget-button:not(.widget-toggle-button)",
}


@dataclass
class ExplorationResult:
    cell_index: int
    controls: list = field(default_factory=list)  # "slider 1: 3 -> 4", ...
    screenshots: list = field(default_factory=list)


class NotebookPage:
    """One notebook open in JupyterLab in a Playwright page."""

    def __init__(self, page, lab, path: str, timeout_s: float = 240):
        self.page, self.lab, self.path, self.timeout_ms = page, lab, path, timeout_s * 1000
        self._args = [_PANEL_JS, path]

    def open(self) -> None:
        self.page.goto(self.lab.url(f"lab/tree/{urllib.parse.quote(self.path)}"),
                       wait_until="domcontentloaded")
        deadline = time.monotonic() + self.timeout_ms / 1000
        while not self.page.evaluate(_READY_JS, self._args):
            # A notebook whose kernel JupyterLab cannot pick asks which one: take the default.
            accept = self.page.locator(".jp-Dialog .jp-mod-accept")
            if accept.count():
                accept.first.click()
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.path}: notebook or kernel not ready\n{self.lab.log_tail()}")
            self.page.wait_for_timeout(250)

    def run_all(self) -> list[dict]:
        """Run All Cells, wait until the kernel is idle again, return the cells."""
        self.page.evaluate(_RUN_ALL_JS, self._args)
        try:
            self.page.wait_for_function(_RUN_DONE_JS, arg=self._args, timeout=self.timeout_ms,
                                        polling=250)
        except Exception as timeout:  # Playwright's TimeoutError: say which cells never ran
            waiting = [c["index"] for c in self.cells()
                       if c["type"] == "code" and c["source"].strip() and c["executionCount"] is None]
            raise AssertionError(f"{self.path}: still running after {self.timeout_ms / 1000:.0f}s; "
                                 f"cells not run: {waiting}") from timeout
        self.settle()
        return self.cells()

    def shutdown_kernel(self) -> None:
        """Stop this notebook's kernel, so the next notebook has the CPU to itself.
        Best effort: it runs after failures too, and must not hide them (the server's
        shutdown ends every kernel anyway)."""
        try:
            self.page.evaluate("""async ([panelJs, path]) => {
              const panel = eval(panelJs)(path);
              if (panel && panel.sessionContext.session) await panel.sessionContext.shutdown();
            }""", self._args)
        except Exception:  # noqa: BLE001 - a closed page or a dead kernel: nothing left to stop
            pass

    def cells(self) -> list[dict]:
        return self.page.evaluate(_CELLS_JS, self._args)

    def settle(self, quiet_ms: int = 2500) -> None:
        # Widget views render after the kernel is idle, and the widget manager waits
        # 2 s for a missing model before it shows "model not found": outwait it.
        self.page.wait_for_timeout(quiet_ms)

    def cell(self, index: int):
        return self.page.locator(f'[data-rnncourse-cell="{index}"]')

    def problems(self, cells: list[dict]) -> list[str]:
        """Everything a learner would see as broken, anywhere in the notebook."""
        found = []
        for c in cells:
            if c["type"] == "code" and c["source"].strip() and c["executionCount"] is None:
                found.append(f"cell {c['index']} did not run")
            for out in c["outputs"]:
                if out.get("output_type") == "error":
                    found.append(f"cell {c['index']} raised {out.get('ename')}: {out.get('evalue')}")
                elif out.get("output_type") == "stream" and out.get("name") == "stderr":
                    found.append(f"cell {c['index']} wrote to stderr: {_short(out.get('text'))}")
        notebook = self.page.locator(f'[id="{self._panel_id()}"] .jp-Notebook')
        text = notebook.inner_text()
        found += [f"the page shows {msg!r}" for msg in WIDGET_FAILURES if msg in text]
        if notebook.locator(".jupyter-widgets-error-widget").count():
            found.append("a widget shows the widget manager's error box")
        # Errors raised inside a widget callback land in an Output widget, not a cell model.
        for el in notebook.locator(f".widget-output {_STDERR_SELECTOR}").all():
            found.append(f"a widget output shows an error: {_short(el.inner_text())}")
        return found

    def _panel_id(self) -> str:
        return self.page.evaluate(f"(path) => ({_PANEL_JS})(path).id", self.path)

    def snapshot(self, index: int) -> str:
        return self.cell(index).evaluate(_SNAPSHOT_JS)

    def widget_count(self, index: int) -> int:
        return self.cell(index).locator(".jp-OutputArea-output .jupyter-widgets").count()

    def explore(self, index: int, shots: Path, name: str, change_timeout_s: float = 60) -> ExplorationResult:
        """Operate every control of the exploration in cell `index`; each must change what it shows."""
        result = ExplorationResult(index)
        cell = self.cell(index)
        cell.scroll_into_view_if_needed()
        if not self.widget_count(index):
            raise AssertionError(f"{name}: cell {index} shows no widget")
        before_all = self.snapshot(index)
        if not before_all.strip():
            raise AssertionError(f"{name}: cell {index} shows no figure or text for a control to change")
        result.screenshots.append(self._shot(cell, shots / f"{name}-before.png"))
        controls = [(kind, el) for kind, sel in CONTROLS.items() for el in cell.locator(sel).all()]
        # A plain button (a "reset", say) need not change anything when other controls exist.
        operable = [c for c in controls if c[0] != "button"] or controls
        if not operable:
            raise AssertionError(f"{name}: cell {index} has no slider, dropdown, checkbox or button")
        for n, (kind, el) in enumerate(operable, 1):
            before = self.snapshot(index)
            what = self._operate(kind, el)
            self._wait_changed(index, before, change_timeout_s,
                               f"{name}: moving {kind} {n} ({what}) did not change the figure or text")
            errors = cell.locator(f".widget-output {_STDERR_SELECTOR}").all_inner_texts()
            if errors:
                raise AssertionError(f"{name}: after moving {kind} {n} ({what}) the exploration "
                                     f"shows an error:\n{_short(errors[0], 2000)}")
            result.controls.append(f"{kind} {n}: {what}")
        result.screenshots.append(self._shot(cell, shots / f"{name}-after.png"))
        return result

    def _operate(self, kind: str, el) -> str:
        el.scroll_into_view_if_needed()
        if kind == "slider":
            return self._move_slider(el)
        if kind == "dropdown":
            options = el.locator("option").all_inner_texts()
            current = el.evaluate("s => s.selectedIndex")
            target = (current + 1) % len(options)
            el.select_option(index=target)
            return f"{options[current]!r} -> {options[target]!r}"
        el.click()
        return "clicked"

    def _move_slider(self, handle) -> str:
        # The keyboard moves the handle one step, as a learner using arrows would;
        # at the top of the range, step down instead.
        # aria-valuenow is rounded to one decimal (0.95 reads 0.9); the text is exact.
        value = lambda: handle.get_attribute("aria-valuetext") or handle.get_attribute("aria-valuenow")
        start = value()
        for key in ("ArrowRight", "ArrowLeft"):
            handle.focus()
            self.page.keyboard.press(key)
            self.page.wait_for_timeout(300)
            if value() != start:
                return f"{start} -> {value()}"
        # Keyboard refused (a disabled handle would): drag a quarter of the track.
        track = handle.locator("xpath=ancestor::*[contains(@class,'noUi-target')][1]").bounding_box()
        box = handle.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        self.page.mouse.move(x, y)
        self.page.mouse.down()
        self.page.mouse.move(x + (track["width"] / 4 if x < track["x"] + track["width"] / 2
                                  else -track["width"] / 4), y, steps=5)
        self.page.mouse.up()
        return f"{start} -> {value()} (dragged)"

    def _wait_changed(self, index: int, before: str, timeout_s: float, message: str) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            now = self.snapshot(index)
            # An Output widget is cleared before it is redrawn: wait for the new content.
            if now != before and now.strip():
                self.page.wait_for_timeout(300)
                if self.snapshot(index) == now:
                    return
            self.page.wait_for_timeout(200)
        raise AssertionError(message)

    @staticmethod
    def _shot(locator, path: Path) -> str:
        path.parent.mkdir(parents=True, exist_ok=True)
        locator.screenshot(path=str(path))
        return str(path)


def _short(text, limit: int = 300) -> str:
    text = re.sub(r"\x1b\[[0-9;]*m", "", "".join(text) if isinstance(text, list) else str(text))
    return text if len(text) <= limit else text[:limit] + "..."
