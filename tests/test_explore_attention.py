"""The lesson-10 exploration, measurements and saved runs, called as plain functions."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.data.seq2seq import MONTHS, date_examples, reversal_pairs  # noqa: E402
from rnncourse.experiments import attention as X  # noqa: E402
from rnncourse.explore.attention import (  # noqa: E402
    alignment, alignment_explorer, date_field_spans, dates_mass, draw_alignment, encode_source,
    reversal_mass, self_attention_cost, static_figure,
)


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# ---------------------------------------------------------------- the saved runs

@pytest.fixture(scope="module")
def results():
    return X.load_results()


def test_results_cover_every_task_model_and_seed(results):
    cfg = results["config"]
    assert results["regenerate"] == "python -m rnncourse.experiments.attention"
    expected = {f"reversal/{m}/{s}" for m in X.MODELS for s in cfg["seeds"]} | {
        f"dates/{m}/{s}" for m in ("none", "additive") for s in cfg["seeds"]}
    assert set(results["runs"]) == expected
    for key, run in results["runs"].items():
        steps = cfg["steps"] if run["task"] == "reversal" else cfg["date_steps"]
        assert run["eval_steps"] == list(range(cfg["eval_every"], steps + 1, cfg["eval_every"]))
        assert len(run["eval_exact"]) == len(run["eval_seconds"]) == len(run["eval_steps"])
        assert all(0 <= a <= 1 for a in run["eval_exact"]) and 0 <= run["exact"] <= 1
        assert run["eval_seconds"] == sorted(run["eval_seconds"])
        if run["task"] == "reversal":
            assert sorted(map(int, run["exact_by_length"])) == list(range(cfg["min_len"], cfg["max_len"] + 1))


def test_saved_settings_are_the_dataclass_defaults(results):
    assert X.AttentionSettings.from_dict(results["config"]) == X.SETTINGS
    assert X.SETTINGS.to_dict() == results["config"]


def test_parameter_counts_are_matched_as_the_lesson_says(results):
    runs = results["runs"]
    counts = {m: runs[f"reversal/{m}/0"]["parameters"] for m in X.MODELS}
    assert counts == {m: X.count_parameters(X.build_model(m)) for m in X.MODELS}
    assert counts["none"] < counts["additive"] <= counts["none_matched"]
    # the matched size is the smallest (even) one that reaches the attention model's count
    smaller = X.SETTINGS.replace(matched_hidden=X.SETTINGS.matched_hidden - 2)
    assert X.count_parameters(X.build_model("none_matched", settings=smaller)) < counts["additive"]


def _means(results, task, model, key="exact"):
    return np.array([r[key] for k, r in results["runs"].items() if k.startswith(f"{task}/{model}/")])


def test_what_the_lesson_concludes_holds_on_the_saved_runs(results):
    runs = results["runs"]

    def long(model):  # mean exact match on sources of 16-20 digits, per seed
        return np.array([np.mean([r["exact_by_length"][str(L)] for L in range(16, 21)])
                         for k, r in runs.items() if k.startswith(f"reversal/{model}/")])
    assert long("additive").min() > long("none_matched").max()
    assert _means(results, "reversal", "additive").min() > _means(results, "reversal", "none_matched").max()
    assert _means(results, "dates", "additive").min() > _means(results, "dates", "none").max()


def test_a_saved_run_is_what_the_script_makes(results, one_thread):
    # the start of one saved run retrained from its seed: the same losses up to summation order
    saved = results["runs"]["reversal/none/0"]
    _, history, _ = X.train("none", X.SETTINGS.replace(eval_every=25), task="reversal", steps=25, seed=0)
    assert history.losses[::10] == pytest.approx(saved["losses"][:3], abs=2e-3)


# ---------------------------------------------------------------- alignments and their measures

def test_the_saved_models_decode_and_align():
    al = alignment("reversal", "31415926")
    assert "".join(al["output"]) == "62951413<eos>"
    W = al["weights"]
    assert W.shape == (9, 8) and np.allclose(W.sum(1), 1)
    assert all(W[t].argmax() == 7 - t for t in range(8))  # the anti-diagonal
    date = alignment("dates", "Tuesday, 3 March 2021")
    assert "".join(date["output"]) == "2021-03-03<eos>"


def test_bad_sources_are_named():
    with pytest.raises(ValueError, match="'x'"):
        encode_source("reversal", "12x4")
    with pytest.raises(ValueError, match="empty"):
        encode_source("dates", "")
    with pytest.raises(ValueError, match="task"):
        alignment("french", "abc")


@pytest.mark.parametrize("seed", range(3))
def test_date_field_spans_find_each_field(seed):
    for text, iso in date_examples(60, torch.Generator().manual_seed(seed)):
        spans = date_field_spans(text)
        year, month, day = iso.split("-")
        assert text[slice(*spans["year"])] == year, text
        assert int(text[slice(*spans["day"])]) == int(day), text
        m = text[slice(*spans["month"])].lower()
        assert (m.isdigit() and int(m) == int(month)) or MONTHS[int(month) - 1].startswith(m), text


def test_attention_mass_falls_where_the_answer_is():
    gen = torch.Generator().manual_seed(7)
    pairs = [p for L in (5, 12, 20) for p in reversal_pairs(10, L, L, gen)]
    rev = reversal_mass(X.load_model("reversal"), pairs)
    assert rev["mass"] > 0.7 and rev["argmax"] > 0.9 and rev["uniform"] < 0.2
    dates = dates_mass(X.load_model("dates"), date_examples(100, torch.Generator().manual_seed(7)))
    assert set(dates) == {"year", "month", "day"}
    assert all(m["mass"] > 2 * m["uniform"] for m in dates.values())


def test_self_attention_cost_counts_the_weights():
    cost = self_attention_cost(lengths=(16, 32), size=8, batch=3)
    assert cost["T"] == [16, 32] and cost["weights"] == [3 * 16 * 16, 3 * 32 * 32]
    assert all(t > 0 for t in cost["attention_ms"] + cost["gru_ms"])


# ---------------------------------------------------------------- figures and the widget

def _pixels(al, step):
    fig = plt.figure(figsize=(8, 3))
    draw_alignment(fig, al, step)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_the_figure_follows_the_step():
    al = alignment("reversal", "2718281")
    assert not np.array_equal(_pixels(al, 0), _pixels(al, 3))


def test_static_figure_has_titles_and_labelled_axes():
    fig = static_figure()
    axes = fig.axes
    assert len(axes) == 4
    for ax in axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(fig)


def test_explorer_builds_and_redraws():
    import ipywidgets as widgets
    box = alignment_explorer()
    task, source = box.children[0].children
    step, out = box.children[1], box.children[2]
    assert isinstance(out, widgets.Output) and step.max == len(source.value)  # one output per digit, then EOS
    before = out.outputs[0]["data"]["image/png"]
    step.value = step.value + 1
    assert out.outputs[0]["data"]["image/png"] != before
    before = out.outputs[0]["data"]["image/png"]
    source.value = "12345"
    assert step.max == 5 and out.outputs[0]["data"]["image/png"] != before
    source.value = "12a45"  # not a digit: the figure says so, nothing raises
    assert len(out.outputs) == 1
    task.value = "dates"
    assert "March" in source.value or source.value
    assert plt.get_fignums() == []
