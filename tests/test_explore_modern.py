"""The lesson-11 exploration's logic, called as plain functions, on small fake runs."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnncourse.explore.modern import (  # noqa: E402
    cost_explorer, draw_costs, fastest, growth, plot_rounds, ratio, seconds_at, static_figure, summary_text,
)


def fake_timing():
    return {"lengths": [64, 128, 256], "device_name": "CPU",
            "seconds": {"nn.GRU": [0.01, 0.02, 0.04], "minGRU scan": [0.02, 0.03, 0.045],
                        "attention": [0.005, 0.02, 0.08], "GRU (rnncourse)": [0.5, 5.0, None]}}


def fake_memory():
    return {"rows": [{"n": n, "rnn_seconds": 1e-5, "attention_seconds": 1e-6 * n, "rnn_bytes": 512,
                      "attention_bytes": 1024 * n} for n in (16, 64, 256)]}


def test_tables():
    t = fake_timing()
    assert seconds_at(t, "attention", 128) == 0.02 and seconds_at(t, "GRU (rnncourse)", 256) is None
    assert fastest(t) == {64: "attention", 128: "nn.GRU", 256: "nn.GRU"}
    assert ratio(t, "attention", "nn.GRU", 256) == pytest.approx(2.0)
    assert ratio(t, "GRU (rnncourse)", "nn.GRU", 256) is None
    assert growth(t, "attention") == pytest.approx(2.0)  # 0.02 -> 0.08 as T doubles: T^2
    assert growth(t, "nn.GRU") == pytest.approx(1.0)
    assert growth(t, "GRU (rnncourse)") == pytest.approx(np.log2(10))
    with pytest.raises(KeyError, match="no model 'LSTM'"):
        seconds_at(t, "LSTM", 64)
    text = summary_text(t, fake_memory(), "GRU (rnncourse)", 256)
    assert "not timed" in text and "fastest at T = 256: nn.GRU" in text and "262144 B" in text


def _pixels(name, T, rounds_T):
    fig = plt.figure(figsize=(10, 6))
    draw_costs(fig, fake_timing(), fake_memory(), name, T, rounds_T)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_figure_changes_with_each_control():
    base = _pixels("attention", 256, 8)
    assert not np.array_equal(base, _pixels("nn.GRU", 256, 8))
    assert not np.array_equal(base, _pixels("attention", 64, 8))
    assert not np.array_equal(base, _pixels("attention", 256, 5))


def test_rounds_picture_has_one_row_per_round():
    fig, ax = plt.subplots()
    plot_rounds(ax, 9)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert labels == ["input", "round 1 (d = 1)", "round 2 (d = 2)", "round 3 (d = 4)", "round 4 (d = 8)"]
    assert "4 rounds instead of 8" in ax.get_title()
    assert sum(1 for c in ax.get_children() if type(c).__name__ == "Annotation") == 8 + 7 + 5 + 1
    plt.close(fig)


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = cost_explorer(fake_timing(), fake_memory())
    controls = box.children[0].children
    assert [c.description for c in controls] == ["model", "length T", "scan's T"]
    text, out = box.children[1], box.children[2]
    assert isinstance(out, widgets.Output) and "minGRU scan at T = 256" in text.value
    for control, value in zip(controls, ("attention", 64, 5)):
        before = out.outputs[0]["data"]["image/png"]
        control.value = value
        assert out.outputs[0]["data"]["image/png"] != before
    assert "attention at T = 64" in text.value
    assert plt.get_fignums() == []


def test_static_figure_has_labelled_axes():
    fig = static_figure(fake_timing(), fake_memory())
    assert len(fig.axes) == 4
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_title()
    plt.close(fig)


def test_explorer_loads_the_saved_runs_by_default():
    from rnncourse.experiments.modern import SETTINGS
    box = cost_explorer()
    assert box.children[0].children[1].options == SETTINGS.lengths
    plt.close("all")


# ---------------------------------------------------------------- the experiment behind the curves

def test_attention_is_causal_and_its_cache_gives_the_forward():
    import torch
    from rnncourse.experiments.modern import CausalSelfAttention
    torch.manual_seed(0)
    layer = CausalSelfAttention(6).double()
    x = torch.randn(2, 7, 6, dtype=torch.float64)
    y = layer(x)
    changed = x.clone()
    changed[:, 4:] += 1.0  # the future changes: the first four outputs must not
    torch.testing.assert_close(layer(changed)[:, :4], y[:, :4])
    cache, steps = None, []
    for t in range(7):
        y_t, cache = layer.step(x[:, t], cache)
        steps.append(y_t)
    torch.testing.assert_close(torch.stack(steps, 1), y)
    assert cache[0].shape == (2, 7, 6)  # the cache grows with every token


def test_generation_cost_counts_what_each_keeps():
    from rnncourse.experiments.modern import SETTINGS, generation_cost
    r = generation_cost(32, SETTINGS.replace(repeats=1))
    L, d = SETTINGS.gen_layers, SETTINGS.width
    assert r["rnn_bytes"] == L * d * 4 and r["attention_bytes"] == 2 * 32 * L * d * 4
    assert r["rnn_seconds"] > 0 and r["attention_seconds"] > 0


def test_saved_runs_match_the_settings():
    from rnncourse.experiments.modern import ADDING_KINDS, SETTINGS, TIMED, load, load_streaming_model
    for name in ("timing_cpu", "memory", "adding"):
        saved = load(name)
        assert saved["config"] == SETTINGS.to_dict(), name
    timing = load("timing_cpu")
    assert timing["lengths"] == list(SETTINGS.lengths) and list(timing["seconds"]) == list(TIMED)
    assert [r["n"] for r in load("memory")["rows"]] == list(SETTINGS.contexts)
    runs = load("adding")["runs"]
    assert {(r["kind"], r["T"], r["seed"]) for r in runs.values()} == {
        (k, T, s) for k in ADDING_KINDS for T in SETTINGS.adding_T for s in SETTINGS.seeds}
    model = load_streaming_model()
    assert model.rnn.num_layers == 2 and not model.training
