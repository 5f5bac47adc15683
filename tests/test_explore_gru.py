"""The lesson-05 exploration's logic, called as plain functions."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.explore.gru import (  # noqa: E402
    accuracy_at, accuracy_table, comparison_explorer, draw_comparison, gru_gates, lengths_of,
    longest_solved, sequential_cost, static_figure, steps_of,
)


def fake_results():
    """Two lengths, two seeds, three evaluations: small enough to check by hand."""
    runs = {}
    acc = {"RNN": {5: [0.3, 0.9, 1.0], 50: [0.25, 0.25, 0.3]},
           "LSTM": {5: [0.5, 1.0, 1.0], 50: [0.25, 0.6, 0.95]},
           "GRU": {5: [1.0, 1.0, 1.0], 50: [0.4, 1.0, 1.0]}}
    for kind, by_T in acc.items():
        for T, curve in by_T.items():
            for seed in (0, 1):
                shift = 0.0 if seed == 0 else -0.1 * (curve[-1] < 1)
                runs[f"{kind}/{T}/{seed}"] = {"kind": kind, "T": T, "seed": seed, "steps": [10, 20, 30],
                                              "accuracy": [a + shift for a in curve]}
    return {"config": {"num_symbols": 4}, "runs": runs}


def test_tables():
    r = fake_results()
    assert lengths_of(r) == [5, 50] and steps_of(r) == [10, 20, 30]
    np.testing.assert_allclose(accuracy_at(r, "LSTM", 50), [0.95, 0.85])
    np.testing.assert_allclose(accuracy_at(r, "LSTM", 50, step=20), [0.6, 0.5])
    np.testing.assert_allclose(accuracy_table(r)["RNN"], [1.0, 0.25])
    assert longest_solved(r) == {"RNN": 5, "LSTM": 5, "GRU": 50}
    assert longest_solved(r, step=10) == {"RNN": 0, "LSTM": 0, "GRU": 5}
    with pytest.raises(KeyError):
        accuracy_at(r, "GRU", 7)


def _pixels(step, T):
    fig = plt.figure(figsize=(8, 3))
    draw_comparison(fig, fake_results(), step, T)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_explorer_figure_changes_with_the_sliders():
    base = _pixels(30, 50)
    assert not np.array_equal(base, _pixels(10, 50))
    assert not np.array_equal(base, _pixels(30, 5))


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = comparison_explorer(fake_results())
    sliders = box.children[0].children
    assert [s.description for s in sliders] == ["training step", "length T"]
    out = box.children[1]
    assert isinstance(out, widgets.Output)
    for slider, value in zip(sliders, (10, 5)):
        before = out.outputs[0]["data"]["image/png"]
        slider.value = value
        assert len(out.outputs) == 1
        assert out.outputs[0]["data"]["image/png"] != before
    assert plt.get_fignums() == []


def test_static_figure_has_labelled_axes():
    fig = static_figure(fake_results(), steps=(10, None))
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(fig)


def test_explorer_loads_the_saved_results_by_default():
    box = comparison_explorer()
    assert box.children[0].children[1].options == (10, 25, 50, 100, 200)
    plt.close("all")


def test_gru_gates_match_torch_gru():
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 6, 3, dtype=torch.float64)
    with torch.no_grad():
        out, _ = gru(x)
    g = gru_gates(x, gru.weight_ih_l0, gru.weight_hh_l0, gru.bias_ih_l0, gru.bias_hh_l0)
    assert set(g) == {"h", "r", "z", "n"} and g["z"].shape == (2, 6, 4)
    torch.testing.assert_close(g["h"], out, atol=1e-12, rtol=0)
    assert ((g["z"] > 0) & (g["z"] < 1)).all()


def test_sequential_cost_reports_both_times():
    r = sequential_cost(20, batch_size=4, hidden_size=8, repeats=2)
    assert set(r) == {"sequential_s", "parallel_s", "ratio", "flops_sequential", "flops_parallel"}
    assert r["sequential_s"] > 0 and r["parallel_s"] > 0
    assert r["ratio"] == pytest.approx(r["sequential_s"] / r["parallel_s"])
    assert r["flops_sequential"] == r["flops_parallel"] == 2 * 20 * 4 * 8 * 8 + 20 * 4 * 8


def test_sequential_cost_runs_on_the_threads_asked_and_restores_them():
    before = torch.get_num_threads()
    sequential_cost(5, batch_size=2, hidden_size=4, repeats=1, threads=1)
    assert torch.get_num_threads() == before


def test_step_flops_follow_the_gate_blocks():
    from rnncourse.explore.gru import step_flops
    assert [step_flops(k, 2, 3, 5) for k in ("RNN", "GRU", "LSTM")] == [2 * 2 * g * 5 * 8 for g in (1, 3, 4)]


def test_step_cost_times_each_kind_with_and_without_onednn(recwarn):
    from rnncourse.explore.gru import step_cost
    for kind in ("RNN", "GRU", "LSTM"):
        for on in (True, False):
            s = step_cost(kind, hidden_size=8, batch_size=2, T=3, onednn=on, repeats=1)
            assert 0 < s < 1
    assert not [w for w in recwarn if "oneDNN" in str(w.message) or "TF32" in str(w.message)]
