"""The repository documents itself: docs/ covers every lesson of the lesson map
and every graded cell of the written lessons, and no tracked file points to a
specification or notes kept outside the repository."""
from __future__ import annotations

import re
import subprocess

import nbformat
import pytest

from notebook_rules import ROOT, nbmeta
from rnncourse.lessons import LESSONS, PLANNED

DOCS = ROOT / "docs"
# Names of documents that used to live outside the repository; their content is in docs/.
OUTSIDE = re.compile(r"SYLLABUS|NBGRADER_NOTES|steering folder|/work/shared|shared/SYLLABUS")


def test_course_page_names_every_lesson_written_or_planned():
    text = (DOCS / "course.md").read_text()
    for name in [lesson.assignment for lesson in LESSONS] + [name for name, _ in PLANNED]:
        assert f"`{name}`" in text, name


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_exercises_page_describes_every_graded_cell(lesson):
    text = (DOCS / "exercises.md").read_text()
    nb = nbformat.read(ROOT / "solutions" / lesson.assignment / f"{lesson.assignment}.ipynb",
                       as_version=4)
    section = text.split(f"## {lesson.assignment[:2]} ")[1].split("\n## ")[0]
    assert f"`rnncourse.checks.{lesson.checks}`" in section
    for cell in nb.cells:
        m = nbmeta(cell)
        if m.get("grade"):  # test cells and written answers: what earns points
            row = re.search(rf"^\| `{m['grade_id']}` \| ([\d.]+)", section, re.M)
            assert row, f"{lesson}: {m['grade_id']} is not in docs/exercises.md"
            assert float(row.group(1)) == m["points"], m["grade_id"]


def test_nothing_points_outside_the_repository():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                             check=True).stdout.split()
    hits = []
    for name in tracked:
        if name == "tests/test_docs.py" or not name.endswith((".py", ".md", ".ipynb", ".toml", ".yml",
                                                              ".yaml", ".cfg", ".txt", ".json")):
            continue
        for n, line in enumerate((ROOT / name).read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                hits.append(f"{name}:{n}: {line.strip()}")
    assert not hits, "\n".join(hits)
