"""The explorer's gallery: every exploration of the course as a Voilà app.

``python -m rnncourse.gallery build [DEST]`` (``course.py explore`` runs it)
writes one notebook per exploration into ``DEST`` (default ``.gallery/`` at the
repository root, a folder that ignores itself in git) and a landing notebook,
``index.ipynb``, listing them lesson by lesson with a one-line description and
the static figure as a thumbnail. Voilà serves the folder with code cells hidden.

Nothing here names a lesson. The list comes from the lesson map
(``rnncourse.lessons.LESSONS``): for every row with ``explore`` modules, the
solution notebook's cells tagged ``exploration`` are found, and for each one

* the explanation is the markdown cell just above it;
* the static figure is the ``static_figure(...)`` statement of the code cell above that;
* the inputs both need (``weights_toy = toy_rnn(...)``, ``results = load_results()``)
  are the notebook's own top-level assignments and imports of the names they use,
  followed back to what those use in turn: a slice of the notebook, not a copy
  of it, so no exercise and no training cell runs in the gallery.
"""
from __future__ import annotations

import ast
import base64
import builtins
import importlib
import io
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rnncourse.lessons import LESSONS, Lesson

ROOT = Path(__file__).resolve().parent.parent
SOLUTIONS = ROOT / "solutions"
DEFAULT_DEST = ROOT / ".gallery"
EXPLORATION_TAG = "exploration"
INDEX = "index.ipynb"
# "(it needs a running Jupyter kernel)": in the gallery it always has one.
_NO_KERNEL_NOTE = re.compile(r"\s*\((?:it\s+)?needs?\s+a\s+running\s+(?:Jupyter\s+)?kernel\)", re.I)
# Lab extensions of the environment that are not Voilà's to load (they fail in its
# page and fill the console with errors): the grader's and Notebook 7's.
DENIED_EXTENSIONS = ("@jupyter/nbgrader", "@jupyter-notebook/lab-extension")


@dataclass
class Exploration:
    lesson: Lesson
    module: str                 # rnncourse.explore.<module>
    page: str                   # file name of its gallery notebook
    explanation: str            # markdown
    static_code: str            # the notebook's static-figure cell (sets ``fig``)
    widget_code: str            # the exploration cell's source
    setup_code: list[str] = field(default_factory=list)  # inputs, in notebook order

    @property
    def description(self) -> str:
        """First sentence of the explore module's docstring, without its "Lesson NN:" prefix."""
        doc = importlib.import_module(f"rnncourse.explore.{self.module}").__doc__ or ""
        text = " ".join(doc.split())
        text = re.split(r"(?<=\.)\s", text, maxsplit=1)[0]
        text = re.sub(r"^[^:]*\blesson \d+:\s*", "", text, flags=re.I)
        return text[:1].upper() + text[1:]

    def figure_code(self) -> str:
        """Code that builds the inputs and sets ``fig`` to the static figure."""
        return "\n".join([f"from rnncourse.explore.{self.module} import *", *self.setup_code,
                          self.static_code])


def _code_cells(nb: dict) -> list[tuple[int, ast.Module, str]]:
    out = []
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code":
            continue
        src = "".join(cell["source"])
        try:
            out.append((i, ast.parse(src), src))
        except SyntaxError:  # magics, exercises left blank
            continue
    return out


def _loads(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _binds(stmt: ast.stmt) -> set[str]:
    if isinstance(stmt, (ast.Import, ast.ImportFrom)):
        return {(a.asname or a.name).split(".")[0] for a in stmt.names}
    if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
        targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
        return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}
    return set()


def _flat(body: list) -> list:
    """Top-level statements, with a ``try:`` block's body read as top level: every
    notebook's first cell imports rnncourse inside one (to say how to install it)."""
    out = []
    for stmt in body:
        out.extend(_flat(stmt.body) if isinstance(stmt, ast.Try) else [stmt])
    return out


def _slice(nb: dict, names: set[str], before: int, known: set[str]) -> list[str]:
    """Top-level statements of code cells before cell ``before`` that bind ``names``
    (the last binding before the use), and what they need in turn, in notebook order."""
    statements = [(i, k, stmt, src) for i, tree, src in _code_cells(nb) if i < before
                  for k, stmt in enumerate(_flat(tree.body))
                  if isinstance(stmt, (ast.Import, ast.ImportFrom, ast.Assign, ast.AnnAssign))]
    chosen: dict[tuple[int, int], str] = {}
    todo = set(names) - known
    seen = set()
    while todo:
        name = todo.pop()
        seen.add(name)
        for i, k, stmt, src in reversed(statements):
            if name in _binds(stmt):
                chosen[(i, k)] = ast.get_source_segment(src, stmt)
                todo |= _loads(stmt) - known - seen
                break
    return [chosen[key] for key in sorted(chosen)]


def _module_of(call_names: set[str], lesson: Lesson) -> str | None:
    for module in lesson.explore:
        namespace = vars(importlib.import_module(f"rnncourse.explore.{module}"))
        if any(name in namespace and callable(namespace[name]) for name in call_names):
            return module
    return None


def explorations(lessons=LESSONS, solutions: Path = SOLUTIONS) -> list[Exploration]:
    """Every exploration of the lesson map, in lesson order."""
    found = []
    for lesson in lessons:
        if not lesson.explore:
            continue
        path = solutions / lesson.assignment / f"{lesson.assignment}.ipynb"
        nb = json.loads(path.read_text())
        cells = nb["cells"]
        tagged = [i for i, c in enumerate(cells)
                  if EXPLORATION_TAG in c.get("metadata", {}).get("tags", [])]
        if not tagged:
            raise ValueError(f"{path}: lesson {lesson} lists explore modules but no cell is "
                             f"tagged {EXPLORATION_TAG!r}")
        for n, index in enumerate(tagged):
            widget_code = "".join(cells[index]["source"]).strip()
            module = _module_of(_loads(ast.parse(widget_code)), lesson)
            if module is None:
                raise ValueError(f"{path}, cell {index}: calls nothing from rnncourse.explore."
                                 f"{{{','.join(lesson.explore)}}}")
            md = max((i for i in range(index) if cells[i]["cell_type"] == "markdown"), default=None)
            explanation = _NO_KERNEL_NOTE.sub("", "".join(cells[md]["source"])) if md is not None else ""
            static_code, fig_cell = "", index
            for i, tree, src in reversed(_code_cells(nb)):
                if i >= index:
                    continue
                if any("static_figure" in _loads(s) for s in tree.body):
                    # the whole cell: some print what the explanation then reads
                    static_code = src.strip()
                    fig_cell = i
                    break
            if not static_code:
                static_code = "fig = static_figure()"
            known = set(dir(builtins)) | set(vars(importlib.import_module(f"rnncourse.explore.{module}")))
            uses = _loads(ast.parse(static_code)) | _loads(ast.parse(widget_code))
            setup = _slice(nb, uses, fig_cell, known)
            page = lesson.assignment + (f"_{n + 1}" if len(tagged) > 1 else "") + ".ipynb"
            found.append(Exploration(lesson, module, page, explanation.strip(), static_code,
                                     widget_code, setup))
    return found


def thumbnail(exploration: Exploration, dpi: int = 40) -> bytes:
    """The static figure as PNG bytes, drawn here (matplotlib's Agg backend)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import contextlib
    import warnings
    namespace: dict = {}
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # plt.show() under Agg
        exec(compile(exploration.figure_code(), f"<{exploration.page}>", "exec"), namespace)
    fig = namespace.get("fig") or plt.gcf()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    plt.close("all")
    return buf.getvalue()


def _title(exploration: Exploration) -> str:
    lesson = exploration.lesson
    return f"Lesson {lesson.number:02d}: {lesson.title}"


def page_notebook(exploration: Exploration):
    import nbformat.v4 as v4
    md = (f"# {_title(exploration)}\n\n*{exploration.description}*\n\n"
          f"[← all explorations]({INDEX})\n\n{exploration.explanation}")
    figure = (exploration.figure_code() + "\nimport matplotlib.pyplot as plt\nplt.show()")
    widget = f"from rnncourse.explore.{exploration.module} import *\n{exploration.widget_code}"
    nb = v4.new_notebook(cells=[v4.new_markdown_cell(md), v4.new_code_cell(figure),
                                v4.new_markdown_cell("**Try it:** move the controls below."),
                                v4.new_code_cell(widget)])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def index_notebook(explorations: list[Exploration], thumbs: dict[str, bytes]):
    import nbformat.v4 as v4
    parts = ["# The explorer's gallery\n\nEvery exploration of the course, one page each: "
             "a short explanation, the static figure and the live widget. No code to run: "
             "open a page and move the controls.\n"]
    for e in explorations:
        img = base64.b64encode(thumbs[e.page]).decode()
        parts.append(
            f'<div class="gallery-item" style="display:flex;gap:1em;align-items:center;margin:1em 0">'
            f'<a href="{e.page}"><img alt="{e.page}" src="data:image/png;base64,{img}" '
            f'style="width:260px;border:1px solid #ccc"></a>'
            f'<div><a href="{e.page}"><strong>{_title(e)}</strong></a><br>{e.description}</div></div>\n')
    nb = v4.new_notebook(cells=[v4.new_markdown_cell("\n".join(parts))])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def build(dest: Path = DEFAULT_DEST, log=print) -> list[Exploration]:
    """Write the gallery's notebooks into ``dest``; returns the explorations."""
    import nbformat
    dest.mkdir(parents=True, exist_ok=True)
    (dest / ".gitignore").write_text("# built by `python3 course.py explore`\n*\n")
    for old in dest.glob("*.ipynb"):
        old.unlink()
    found = explorations()
    thumbs = {}
    for e in found:
        log(f"gallery: {e.page} ({e.module})")
        thumbs[e.page] = thumbnail(e)
        nbformat.write(page_notebook(e), dest / e.page)
    nbformat.write(index_notebook(found, thumbs), dest / INDEX)
    return found


def voila_command(python, gallery: Path, port: int, ip: str = "127.0.0.1", extra=()) -> list:
    """Voilà serving the gallery folder (tree mode), sources stripped, no browser.

    Each page opened starts a kernel (torch loaded: a few hundred MB). Voilà 0.5 asks
    for its kernel's shutdown when a tab closes, but the server refuses that request
    (no XSRF token: voila-dashboards/voila#1458), so kernels of pages left behind are
    culled instead: after 5 idle minutes, and only once no tab is connected to them.
    """
    return [str(python), "-m", "voila", str(gallery), f"--Voila.ip={ip}", f"--port={port}",
            "--no-browser", "--strip_sources=True", "--show_tracebacks=True",
            "--MappingKernelManager.cull_idle_timeout=300", "--MappingKernelManager.cull_interval=60",
            "--MappingKernelManager.cull_connected=False",
            *[f"--VoilaConfiguration.extension_denylist={name}" for name in DENIED_EXTENSIONS], *extra]


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] != "build":
        print("usage: python -m rnncourse.gallery build [DEST]")
        return 2
    dest = Path(argv[1]) if len(argv) > 1 else DEFAULT_DEST
    build(dest)
    print(f"gallery: {dest / INDEX}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
