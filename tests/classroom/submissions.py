"""Simulated learners: how each one's notebook differs from the released one.

A submission starts from the notebook the student fetched. Every solution cell
gets the instructor's solution (markers removed) unless the submission gives
its own body for it; then the submission may edit, delete or tag cells, as a
careless or crafty learner would. ``lost`` names the test cells that must
score 0; every other autograded test cell must score full marks.
"""
from __future__ import annotations

import copy
import textwrap
from dataclasses import dataclass, field

import nbformat

BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"


@dataclass
class Submission:
    student: str                    # student id; a row of the score table
    what: str                       # what this learner did, in a few words
    bodies: dict = field(default_factory=dict)   # solution grade_id -> code between the markers
    edits: dict = field(default_factory=dict)    # any grade_id -> new cell source
    deleted: tuple = ()                          # grade_ids of cells removed
    tags: dict = field(default_factory=dict)     # grade_id -> cell tags
    untouched: bool = False                      # hand in the release as fetched
    lost: frozenset = frozenset()                # test grade_ids that must score 0


def meta(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def graded_tests(nb) -> dict:
    """grade_id -> points of the autograded test cells (code, graded, not a solution)."""
    return {meta(c)["grade_id"]: float(meta(c)["points"]) for c in nb.cells
            if c.cell_type == "code" and meta(c).get("grade") and not meta(c).get("solution")}


def fill(solution_source: str, body: str | None) -> str:
    """The solution cell's source with its marker lines dropped, or with the code
    between them replaced by ``body`` (indented like the markers)."""
    lines = solution_source.split("\n")
    begin = next(i for i, line in enumerate(lines) if BEGIN in line)
    end = next(i for i, line in enumerate(lines) if END in line)
    if body is None:
        middle = lines[begin + 1:end]
    else:
        indent = lines[begin][: len(lines[begin]) - len(lines[begin].lstrip())]
        middle = textwrap.indent(textwrap.dedent(body).strip("\n"), indent).split("\n")
    return "\n".join(lines[:begin] + middle + lines[end + 1:])


def build(released, solution, sub: Submission):
    """The notebook this learner hands in."""
    nb = copy.deepcopy(released)
    if sub.untouched:
        return nb
    answers = {meta(c)["grade_id"]: c.source for c in solution.cells if meta(c).get("solution")}
    unknown = (set(sub.bodies) - set(answers)) | (
        (set(sub.edits) | set(sub.deleted) | set(sub.tags)) - {meta(c).get("grade_id") for c in nb.cells})
    if unknown:
        raise KeyError(f"submission {sub.student} names cells the notebook lacks: {sorted(unknown)}")
    for cell in nb.cells:
        gid = meta(cell).get("grade_id")
        if meta(cell).get("solution"):
            cell.source = fill(answers[gid], sub.bodies.get(gid))
        if gid in sub.edits:
            cell.source = sub.edits[gid]
        if gid in sub.tags:
            cell.metadata["tags"] = list(sub.tags[gid])
    nb.cells = [c for c in nb.cells if meta(c).get("grade_id") not in sub.deleted]
    return nbformat.from_dict(nb)


def expected(solution, sub: Submission) -> dict:
    """grade_id -> the score each autograded test cell must get."""
    cells = graded_tests(solution)
    unknown = set(sub.lost) - set(cells)
    if unknown:
        raise KeyError(f"submission {sub.student} expects to lose unknown tests {sorted(unknown)}")
    if sub.untouched:
        return {gid: 0.0 for gid in cells}
    return {gid: 0.0 if gid in sub.lost else pts for gid, pts in cells.items()}
