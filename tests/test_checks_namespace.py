"""A lesson's cells never import a helper that computes an exercise's answer into the
learner's namespace (issue class 1). The check blocks such helpers while the learner's
function runs (tests/test_checks_switched_off.py); this test keeps them out of the
notebooks in the first place, so a learner is not handed the answer to read or to
call in another cell.

Scanned: every code cell of every solution notebook except the test cells (whose
check_* imports are what grades), with hidden-test regions removed. Refused: any name
from rnncourse.checks.* other than CheckFailed, the check_* functions and the few
tools in CHECK_TOOLS (which compute no answer), anything
from rnncourse.functional, the reference models (from rnncourse, cells, recurrent,
lstm, lstm_bptt, peephole, rnn_base), and, in the lessons whose exercises they
answer, the stream helpers of rnncourse.data.stream: batchify and tbptt_chunks in
lesson 02 (its exercises batchify and tbptt_batches), tbptt_chunks and
detach_state in lesson 08 (the chunks and the detached state of train_stream).
Lesson 08 may import batchify: it builds the rows train_stream is given and
computes none of that lesson's answers."""
from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from notebook_rules import kind, strip_hidden

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(ROOT.glob("solutions/*/*.ipynb"))
MODELS = {"RNNCell", "LSTMCell", "GRUCell", "PeepholeLSTMCell", "RNN", "LSTM", "GRU"}
MODEL_MODULES = {"rnncourse.cells", "rnncourse.recurrent", "rnncourse.lstm", "rnncourse.lstm_bptt",
                 "rnncourse.peephole", "rnncourse.rnn_base"}
# rnncourse.data.stream's helpers that compute (part of) an exercise's answer, per lesson
STREAM_ANSWERS = {"02_bptt": {"batchify", "tbptt_chunks"},
                  "08_language_model": {"tbptt_chunks", "detach_state"}}


# names from the checks a lesson may import, computing no exercise's answer: 06's dropout
# with known masks (what the check hands to stacked_bilstm; the notebook builds one the
# same way) and 11's operation counter with its two lengths (it calls the learner's
# function, blocked like any check, and counts torch calls)
CHECK_TOOLS = {"06_bidirectional_stacked": {"MarkedDropout", "DropoutSpec"},
               "11_modern_recurrences": {"SHORT", "LONG", "operations"}}


def _refused(module: str, name: str, lesson: str) -> str | None:
    if module.startswith("rnncourse.checks"):
        if name == "CheckFailed" or name.startswith("check_") or name in CHECK_TOOLS.get(lesson, ()):
            return None
        return f"{name} from {module} (a check's reference or variant helper)"
    if module == "rnncourse.functional" or (module == "rnncourse" and name == "functional"):
        return f"{name} from {module} (the step equations)"
    if module in MODEL_MODULES or (module == "rnncourse" and name in MODELS):
        return f"{name} from {module} (a reference model)"
    answers = STREAM_ANSWERS.get(lesson, set())
    if answers and ((module == "rnncourse.data.stream" and name in answers | {"*"})
                    or (module == "rnncourse.data" and name == "stream")):
        return f"{name} from {module} (it computes part of {lesson}'s exercises: {', '.join(sorted(answers))})"
    return None


def answer_imports(source: str, lesson: str) -> list[str]:
    """The refused imports in one cell of ``lesson``'s code (IPython magics and shell lines skipped)."""
    code = "\n".join(line for line in source.split("\n") if not line.lstrip().startswith(("%", "!")))
    found = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("rnncourse"):
            found += [r for a in node.names if (r := _refused(node.module, a.name, lesson))]
        elif isinstance(node, ast.Import):
            for a in node.names:
                parent, _, last = a.name.rpartition(".")
                if a.name.startswith("rnncourse.") and (r := _refused(parent, last, lesson)
                                                        or _refused(a.name, "*", lesson)):
                    found.append(f"import {a.name}: {r}")
    return found


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.parent.name)
def test_no_cell_imports_an_answer_helper(path):
    nb = nbformat.read(path, as_version=4)
    bad = [f"cell {i}: {what}" for i, cell in enumerate(nb.cells)
           if cell.cell_type == "code" and kind(cell) != "test"
           for what in answer_imports(strip_hidden(cell.source), path.parent.name)]
    assert not bad, f"{path.name} imports answer helpers into the learner's namespace: {bad}"


def test_the_scan_finds_what_it_must():
    assert answer_imports("from rnncourse.checks.gru import gru_variant", "05_gru")
    assert answer_imports("import rnncourse.functional as F", "10_attention")
    assert answer_imports("from rnncourse import functional, LSTM", "01_rnn")
    assert answer_imports("from rnncourse.data.stream import batchify", "02_bptt")
    assert answer_imports("from rnncourse.data import stream", "02_bptt")
    assert answer_imports("import rnncourse.data.stream", "08_language_model")
    assert answer_imports("from rnncourse.data.stream import tbptt_chunks", "08_language_model")
    assert answer_imports("from rnncourse.data.stream import detach_state", "08_language_model")
    assert answer_imports("from rnncourse.checks.rnn import reference_forward", "07_batching_masking")
    # exact: a stream helper that answers none of the lesson's exercises is a tool there
    assert not answer_imports("from rnncourse.data.stream import batchify", "08_language_model")
    assert not answer_imports("from rnncourse.checks.welcome import check_one_hot\n"
                              "from rnncourse.checks.core import CheckFailed\n%matplotlib inline\n"
                              "from rnncourse.explore.rnn import toy_rnn\nimport rnncourse", "00_welcome")
