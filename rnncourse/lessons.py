"""The lesson map: which parts of the package belong to which lesson.

One row per folder of ``solutions/`` (``solutions/<assignment>/<assignment>.ipynb``).
The tests and tools read this map instead of keeping lists of their own:
``tests/test_lesson_structure.py`` fails when a folder of solutions/ has no row,
when a row has no folder, or when a row names a module that does not exist;
``tests/test_grading.py`` grades every row's simulated class and fails when a
row's class is missing; ``tools/release.py`` refuses to release a folder that
has no row. Adding a lesson therefore starts here.

Module names are relative: ``checks="rnn"`` is ``rnncourse.checks.rnn``,
``explore=("rnn",)`` is ``rnncourse.explore.rnn``, and so on. The simulated
class is a module of the test suite (``tests/classroom/a<assignment>.py``), named
here by its import name only: the package never imports the tests.
"""
from __future__ import annotations

import importlib.util
from dataclasses import dataclass


@dataclass(frozen=True)
class Lesson:
    assignment: str                  # NN_topic: the folder and notebook name
    title: str                       # what the lesson is about, in a few words
    checks: str                      # rnncourse.checks.<checks>: what its test cells import
    explore: tuple[str, ...] = ()      # rnncourse.explore.<name>: its widgets' logic
    experiments: tuple[str, ...] = ()  # rnncourse.experiments.<name>: saved runs it loads
    data: tuple[str, ...] = ()         # rnncourse.data.<name>: task generators it uses

    @property
    def number(self) -> int:
        return int(self.assignment[:2])

    @property
    def classroom(self) -> str:
        """Import name of its simulated class (tests/classroom/a<assignment>.py)."""
        return f"classroom.a{self.assignment}"

    def modules(self) -> list[str]:
        """Full import names of every package module the row names."""
        return ([f"rnncourse.checks.{self.checks}"]
                + [f"rnncourse.explore.{m}" for m in self.explore]
                + [f"rnncourse.experiments.{m}" for m in self.experiments]
                + [f"rnncourse.data.{m}" for m in self.data])

    def missing_modules(self) -> list[str]:
        """The modules of :meth:`modules` that cannot be found (without importing them)."""
        return [m for m in self.modules() if importlib.util.find_spec(m) is None]

    def __str__(self) -> str:
        return self.assignment


LESSONS: tuple[Lesson, ...] = (
    Lesson("00_welcome", "how the course works; shapes, devices, seeds", "welcome"),
    Lesson("01_rnn", "the RNN step and forward pass", "rnn", explore=("rnn",)),
    Lesson("02_bptt", "backpropagation through time, truncated BPTT", "bptt",
           explore=("bptt",), data=("stream",)),
    Lesson("03_vanishing_exploding", "vanishing and exploding gradients, clipping", "vanishing",
           explore=("vanishing",), experiments=("adding",), data=("adding",)),
    Lesson("04_lstm", "the LSTM: gates and the cell state", "lstm", explore=("lstm",)),
    Lesson("05_gru", "the GRU; RNN vs LSTM vs GRU on a long-range task", "gru",
           explore=("gru",), experiments=("longrange",), data=("recall",)),
    Lesson("06_bidirectional_stacked", "bidirectional and stacked recurrent layers", "bidirectional",
           explore=("bidirectional",), experiments=("bidirectional",), data=("tagging", "padding")),
    Lesson("07_batching_masking", "padding, masks and packed sequences; masked losses and readouts",
           "masking", explore=("masking", "masking_costs"), experiments=("masking", "masking_tagger"),
           data=("padding", "sentiment", "tagging")),
    Lesson("08_language_model", "a character language model trained with truncated BPTT", "language_model",
           explore=("language_model",), experiments=("language_model",), data=("text", "stream")),
    Lesson("09_seq2seq", "encoder-decoder models, greedy and beam-search decoding", "seq2seq",
           explore=("seq2seq",), experiments=("seq2seq",), data=("seq2seq",)),
    Lesson("10_attention", "additive and multiplicative attention; alignments; self-attention",
           "attention", explore=("attention",), experiments=("attention",), data=("seq2seq",)),
    Lesson("11_modern_recurrences", "linear recurrences, parallel scans, minGRU, streaming", "modern",
           explore=("modern",), experiments=("modern",), data=("adding",)),
)

# Lessons still to be written (docs/course.md describes each). A lesson moves
# from here to LESSONS when its folder appears in solutions/.
PLANNED: tuple[tuple[str, str], ...] = (
)


def lesson(assignment: str) -> Lesson:
    """The row of ``assignment``; KeyError naming the known rows if there is none."""
    for row in LESSONS:
        if row.assignment == assignment:
            return row
    raise KeyError(f"{assignment!r} has no row in rnncourse.lessons.LESSONS "
                   f"(rows: {', '.join(map(str, LESSONS))})")
