"""The lesson map (rnncourse.lessons) and the structure of the lesson source
notebooks in solutions/.

The map must cover every folder of solutions/ and name only modules (and
simulated classes) that exist. Each lesson's notebook expectations (EXPECT,
keyed by assignment) run over every row, or every row that has the expectation,
e.g. an exploration or a live training run.

Checked here: the grade_ids and their points, the cell metadata of
CONTRIBUTING.md's table, test cells that re-import their check and call it
visibly and hidden, each test right after its exercise, the exploration cell
tagged and drawn statically first, what a lesson's solutions must (not) contain,
live training off in fast mode, and (slow) that every lesson runs top to bottom.

Not repeated here, because the other tests check it for every lesson:
tests/test_release.py (nbgrader schema_version 3, unique grade_ids, points > 0,
test cells are locked code cells, no committed outputs, tests that raise) and
tests/test_notebook_training.py (no hand-written training loop).
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from dataclasses import dataclass, field

import nbformat
import pytest
from nbclient import NotebookClient

from classroom.course import release
from notebook_rules import ROOT, nbmeta
from rnncourse.lessons import LESSONS, PLANNED, Lesson
from rnncourse.lessons import lesson as lesson_row


@dataclass(frozen=True)
class Expect:
    """What one lesson's solution notebook must hold, beyond the map's row."""
    graded: dict                  # grade_id -> points (None: an autograded answer)
    explorer: str | None = None   # the call in the cell tagged "exploration"
    explorer_alone: bool = False  # ... and that cell holds nothing else
    forbidden: dict = field(default_factory=dict)  # grade_id -> regex its solution must not match
    calls: dict = field(default_factory=dict)      # grade_id -> text its solution must contain
    live: tuple | None = None     # (text of a live-training cell, the guard every such cell holds)
    code_contains: tuple = ()     # texts that some code cell must contain


EXPECT = {
    "00_welcome": Expect(
        {"one_hot": None, "test_one_hot": 2, "embed": None, "test_embed": 2,
         "answer_one_hot_lookup": 2}),
    "01_rnn": Expect(
        {"rnn_step": None, "test_rnn_step": 3, "rnn_forward": None, "test_rnn_forward": 3,
         "next_token_probs": None, "test_next_token_probs": 2,
         "answer_parameter_sharing": 2, "answer_fading_memory": 1},
        explorer="trajectory_explorer()"),
    "02_bptt": Expect(
        {"rnn_backward": None, "test_rnn_backward": 4, "batchify": None, "test_batchify": 2,
         "tbptt_batches": None, "test_tbptt_batches": 2, "answer_detach": 2},
        explorer="contribution_explorer()", explorer_alone=True,
        # the instructor's solution must pass the rule it teaches
        forbidden={"rnn_backward": r"\.backward\(|autograd"}),
    "03_vanishing_exploding": Expect(
        {"jacobian_norms": None, "test_jacobian_norms": 3, "clip_grad_norm_": None,
         "test_clip_grad_norm_": 3, "answer_clipping_vs_vanishing": 2,
         "answer_lstm_gradients": 2},
        explorer="gradient_explorer()",
        # a live run, off by default; the lesson plots the saved runs
        live=("adding.train(", "if LIVE_RUN and not rnncourse.fast_mode():"),
        code_contains=("LIVE_RUN = False", 'adding.load("lstm"')),
    "04_lstm": Expect(
        {"lstm_step": None, "test_lstm_step": 3, "lstm_forward": None, "test_lstm_forward": 3,
         "peephole_lstm_step": None, "test_peephole_lstm_step": 2,
         "answer_gradient_flow": 2, "answer_gate_settings": 1},
        explorer="gate_explorer()", explorer_alone=True,
        # tensor operations only; the lesson tells the learner to reuse the step
        forbidden={fn: r"nn\.LSTM|LSTMCell|rnncourse\.|lstm_cell"
                   for fn in ("lstm_step", "lstm_forward", "peephole_lstm_step")},
        calls={"lstm_forward": "lstm_step("}),
    "05_gru": Expect(
        {"gru_step": None, "test_gru_step": 4, "count_parameters": None,
         "test_count_parameters": 3, "answer_reset_placement": 2, "answer_update_gate": 1},
        explorer="comparison_explorer(",
        live=("longrange.train(", "LIVE = not rnncourse.fast_mode()")),
    "11_modern_recurrences": Expect(
        {"linear_recurrence": None, "test_linear_recurrence": 2, "parallel_scan": None,
         "test_parallel_scan": 4, "mingru": None, "test_mingru": 3, "stream_step": None,
         "test_stream_step": 3, "answer_scan_cost": 2, "answer_recurrent_vs_attention": 3},
        explorer="cost_explorer(",
        # the scan combines pairs in rounds: no loop over time, no package scan, no cumprod shortcut
        forbidden={"parallel_scan": r"for \w+ in range\(T\)|rnncourse\.|cumprod|cumsum",
                   "mingru": r"for |rnncourse\.", "stream_step": r"rnncourse\.|model\(|\.step\("},
        calls={"mingru": "parallel_scan("},
        # a live timing, off by default; the lesson plots the saved runs
        live=("modern.training_step_time(", "LIVE = not rnncourse.fast_mode()"),
        code_contains=('load("timing_cpu")', 'load("memory")', 'load("adding")', "load_streaming_model()")),
    "08_language_model": Expect(
        {"perplexity": None, "test_perplexity": 3, "answer_uniform_perplexity": 2,
         "train_stream": None, "test_train_stream": 4, "temperature_probs": None,
         "test_temperature_probs": 2, "sample_next": None, "test_sample_next": 3,
         "answer_temperature": 2},
        explorer="temperature_explorer(",
        # the package's answers stay out of the instructor's solutions
        forbidden={"perplexity": r"masked_cross_entropy|rnncourse\.",
                   "train_stream": r"detach_state|tbptt_chunks|rnncourse\.",
                   "temperature_probs": r"rnncourse\.", "sample_next": r"rnncourse\."},
        calls={"train_stream": ".detach()"},
        # the live run trains through the learner's train_stream, shrunk in fast mode
        live=("train_stream(live", "rnncourse.fast_mode()"),
        code_contains=("lm.load_model(", "keep_graph_errors()", "course_prose()")),
    "10_attention": Expect(
        {"masked_softmax": None, "test_masked_softmax": 2, "additive_attention": None,
         "test_additive_attention": 3, "multiplicative_attention": None,
         "test_multiplicative_attention": 2, "attention_decoder_step": None,
         "test_attention_decoder_step": 3, "answer_attention_credit": 2, "answer_alignment": 2},
        explorer="alignment_explorer()", explorer_alone=True,
        # tensor operations only: neither the package's attention nor its softmax
        forbidden={fn: r"rnncourse\.|scaled_dot_product" for fn in (
            "masked_softmax", "additive_attention", "multiplicative_attention", "attention_decoder_step")},
        calls={"additive_attention": "masked_softmax(", "multiplicative_attention": "masked_softmax(",
               "attention_decoder_step": "attention(s_t"},
        live=("attention_exp.train(", "if LIVE_RUN and not rnncourse.fast_mode():"),
        code_contains=("LIVE_RUN = False", 'attention_exp.load_model("reversal")')),
    "09_seq2seq": Expect(
        {"decoder_io": None, "test_decoder_io": 2, "greedy_decode": None, "test_greedy_decode": 3,
         "answer_exposure_bias": 2, "answer_bottleneck": 2, "beam_search": None,
         "test_beam_search": 4},
        explorer="beam_explorer()", explorer_alone=True,
        # tensor operations only: the package's collate and decoders are what is compared with
        forbidden={fn: r"rnncourse\.|collate|pad_batch|decoder_inputs_targets"
                   for fn in ("decoder_io", "greedy_decode", "beam_search")},
        live=("experiment.train(", "if LIVE_RUN and not rnncourse.fast_mode():"),
        code_contains=("LIVE_RUN = False", "experiment.load_results()", "experiment.load_model()")),
    "07_batching_masking": Expect(
        {"pad_batch": None, "test_pad_batch": 3, "masked_cross_entropy": None,
         "test_masked_cross_entropy": 3, "last_valid": None, "test_last_valid": 2,
         "masked_mean": None, "test_masked_mean": 2, "answer_padding_cost": 2, "answer_readouts": 2},
        explorer="readout_explorer(results)", explorer_alone=True,
        # the course's own collate and masking functions are what the exercises replace
        forbidden={fn: r"rnncourse|masking\." for fn in
                   ("pad_batch", "masked_cross_entropy", "last_valid", "masked_mean")},
        live=("readouts_exp.train(", "LIVE = not rnncourse.fast_mode()"),
        code_contains=("masked_loss=masked_cross_entropy", "loss_fn=masked_cross_entropy")),
    "06_bidirectional_stacked": Expect(
        {"reverse_padded": None, "test_reverse_padded": 2, "bilstm": None, "test_bilstm": 4,
         "stacked_bilstm": None, "test_stacked_bilstm": 3, "answer_streaming": 2},
        explorer="context_explorer(",
        # built from cells: no whole recurrent layer, no package reference
        forbidden={fn: r"nn\.LSTM\(|rnncourse\.LSTM\b|masking|reverse_padded as"
                   for fn in ("reverse_padded", "bilstm", "stacked_bilstm")},
        calls={"bilstm": "reverse_padded(", "stacked_bilstm": "bilstm("},
        live=("bidirectional.train(", "LIVE = not rnncourse.fast_mode()")),
}


def expect(lesson: Lesson) -> Expect:
    return EXPECT[lesson.assignment]


def lessons(*having: str) -> list:
    """The lessons whose expectations set each attribute in ``having``."""
    return [lesson for lesson in LESSONS if all(getattr(expect(lesson), a) for a in having)]


# --- the map itself -----------------------------------------------------------------


def test_every_solutions_folder_has_a_row_and_every_row_a_folder():
    folders = set(release.assignments())
    rows = [lesson.assignment for lesson in LESSONS]
    assert len(rows) == len(set(rows)), f"rows repeat: {rows}"
    assert not folders - set(rows), (f"solutions/ folders without a row in rnncourse.lessons.LESSONS: "
                                     f"{sorted(folders - set(rows))}")
    assert not set(rows) - folders, f"rows without a solutions/ folder: {sorted(set(rows) - folders)}"
    assert rows == sorted(rows), "rows are in lesson order"
    assert release.unmapped() == []  # what tools/release.py refuses to release


def test_planned_lessons_are_not_written_yet():
    # once a planned lesson's folder appears, it needs a row in LESSONS (the test above)
    written = set(release.assignments())
    for name, _ in PLANNED:
        assert release.ASSIGNMENT.match(name), name
        assert name not in written, f"{name} is written: move it from PLANNED to LESSONS"


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_every_row_names_modules_that_exist(lesson):
    assert not lesson.missing_modules()


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_every_row_has_a_simulated_class(lesson):
    # tests/test_grading.py grades this class; without it the lesson's grading goes untested
    spec = importlib.util.find_spec(lesson.classroom)
    assert spec is not None, f"tests/classroom/a{lesson.assignment}.py is missing"
    assert getattr(importlib.import_module(lesson.classroom), "SUBMISSIONS", None), \
        f"{lesson.classroom} defines no SUBMISSIONS"


def test_every_row_has_notebook_expectations():
    assert set(EXPECT) == {lesson.assignment for lesson in LESSONS}


def test_a_missing_module_is_reported():
    fake = Lesson("99_fake", "a lesson that does not exist", "no_such_check", explore=("rnn",))
    assert fake.missing_modules() == ["rnncourse.checks.no_such_check"]
    with pytest.raises(KeyError, match="99_fake"):
        lesson_row("99_fake")


# --- the notebooks --------------------------------------------------------------------


def load(lesson: Lesson):
    return nbformat.read(ROOT / "solutions" / lesson.assignment / f"{lesson.assignment}.ipynb", as_version=4)


def graded(nb) -> list:
    return [c for c in nb.cells if "nbgrader" in c.metadata]


def is_test(cell) -> bool:
    m = nbmeta(cell)
    return bool(m.get("grade")) and not m.get("solution")


def source_of(nb, grade_id: str) -> str:
    return next(c.source for c in nb.cells if nbmeta(c).get("grade_id") == grade_id)


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_grade_ids_and_points(lesson):
    nb = load(lesson)
    nbformat.validate(nb)
    got = {c.metadata.nbgrader.grade_id: c.metadata.nbgrader.get("points") for c in graded(nb)}
    assert got == expect(lesson).graded


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_metadata_follows_the_house_table(lesson):
    # exact (grade, solution, locked) per kind of cell, and both solution markers in code
    for cell in graded(load(lesson)):
        m = cell.metadata.nbgrader
        kind = (m.grade, m.solution, m.locked)
        if cell.source.lstrip().startswith("from rnncourse.checks"):
            assert kind == (True, False, True) and cell.cell_type == "code"
        elif cell.cell_type == "code":
            assert kind == (False, True, False)
            assert "### BEGIN SOLUTION" in cell.source and "### END SOLUTION" in cell.source
        else:
            assert kind == (True, True, False)
            assert "### BEGIN SOLUTION" in cell.source


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_test_cells_reimport_their_check_and_call_it_twice(lesson):
    tests = [c for c in load(lesson).cells if is_test(c)]
    assert len(tests) == len([g for g in expect(lesson).graded if g.startswith("test_")])
    for cell in tests:
        lines = cell.source.splitlines()
        check = re.match(rf"from rnncourse\.checks\.{lesson.checks} import (check_\w+)$",
                         lines[0]).group(1)
        fn = check[len("check_"):]
        assert lines[1:] == [f"{check}({fn})", "### BEGIN HIDDEN TESTS", f"{check}({fn}, hidden=True)",
                             "### END HIDDEN TESTS"]


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_each_test_follows_its_exercise(lesson):
    ids = [nbmeta(c)["grade_id"] for c in graded(load(lesson)) if nbmeta(c).get("grade_id")]
    for fn in (g for g, points in expect(lesson).graded.items() if points is None):
        assert ids[ids.index(fn) + 1] == f"test_{fn}"


@pytest.mark.parametrize("lesson", lessons("explorer"), ids=str)
def test_exploration_is_tagged_and_drawn_statically_first(lesson):
    cells = load(lesson).cells
    tagged = [i for i, c in enumerate(cells) if "exploration" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    source = cells[tagged[0]].source
    assert expect(lesson).explorer in source
    if expect(lesson).explorer_alone:
        assert source.strip() == expect(lesson).explorer
    assert any("static_figure(" in c.source for c in cells[:tagged[0]])


@pytest.mark.parametrize("lesson", lessons("forbidden"), ids=str)
def test_solutions_do_not_use_what_the_exercise_replaces(lesson):
    nb = load(lesson)
    for grade_id, pattern in expect(lesson).forbidden.items():
        assert not re.search(pattern, source_of(nb, grade_id)), grade_id


@pytest.mark.parametrize("lesson", lessons("calls"), ids=str)
def test_solutions_build_on_the_earlier_exercise(lesson):
    nb = load(lesson)
    for grade_id, text in expect(lesson).calls.items():
        assert text in source_of(nb, grade_id), grade_id


@pytest.mark.parametrize("lesson", lessons("live"), ids=str)
def test_live_training_is_off_in_fast_mode(lesson):
    marker, guard = expect(lesson).live
    live = [c.source for c in load(lesson).cells if c.cell_type == "code" and marker in c.source]
    assert live and all(guard in s for s in live)


@pytest.mark.parametrize("lesson", lessons("code_contains"), ids=str)
def test_code_cells_hold_what_the_lesson_relies_on(lesson):
    sources = [c.source for c in load(lesson).cells if c.cell_type == "code"]
    for text in expect(lesson).code_contains:
        assert any(text in s for s in sources), text


@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_solution_runs_top_to_bottom(lesson, monkeypatch):
    # no error and nothing on stderr in any cell, graded or not
    monkeypatch.setenv("RNNCOURSE_FAST", "1")
    nb = load(lesson)
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "solutions" / lesson.assignment)}}).execute()
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            assert out.output_type != "error"
            assert not (out.output_type == "stream" and out.name == "stderr"), out.text


@pytest.mark.parametrize("lesson", LESSONS, ids=str)
def test_first_cell_says_how_to_install_a_missing_package(lesson, monkeypatch):
    # On a hub or Colab the notebook can arrive without the package: its first output
    # must say how to get it, not only "No module named 'rnncourse'".
    import sys
    first = next(c for c in load(lesson).cells if c.cell_type == "code")
    monkeypatch.setitem(sys.modules, "rnncourse", None)  # import rnncourse now fails
    with pytest.raises(ModuleNotFoundError, match=r"course\.py lab.*%pip install"):
        exec(compile(first.source, f"{lesson} first cell", "exec"), {})
