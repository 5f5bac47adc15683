"""The lesson-04 exploration and gradient experiment, called as plain functions."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnncourse  # noqa: E402
from rnncourse.explore.lstm import (  # noqa: E402
    SCENARIOS, cell_update, constant_gate_run, draw_gates, gate_explorer, gradient_figure,
    state_gradient_norms, static_figure,
)


def test_cell_update_matches_the_reference_cell():
    # gate values chosen through their pre-activations, then the same step in LSTMCell
    pre = torch.tensor([0.3, 1.2, -0.4, 0.8], dtype=torch.float64)  # i, f, g, o
    i, f, o = torch.sigmoid(pre[[0, 1, 3]]).tolist()
    g = torch.tanh(pre[2]).item()
    parts = cell_update(1.7, i, f, g, o)
    cell = rnncourse.LSTMCell(1, 1, dtype=torch.float64)
    cell.load_state_dict({"weight_ih": torch.zeros(4, 1, dtype=torch.float64),
                          "weight_hh": torch.zeros(4, 1, dtype=torch.float64),
                          "bias_ih": pre, "bias_hh": torch.zeros(4, dtype=torch.float64)})
    with torch.no_grad():
        h, c = cell(torch.zeros(1, 1, dtype=torch.float64),
                    (torch.zeros(1, 1, dtype=torch.float64), torch.full((1, 1), 1.7, dtype=torch.float64)))
    assert parts["c"] == pytest.approx(c.item()) and parts["h"] == pytest.approx(h.item())
    assert parts["kept"] + parts["written"] == pytest.approx(parts["c"])


def test_constant_gates_settle_at_the_fixed_point():
    run = constant_gate_run(2.0, i=0.5, f=0.8, g=0.6, o=0.7, T=80)
    assert run["c"].shape == run["h"].shape == (81,)
    assert run["fixed_point"] == pytest.approx(0.5 * 0.6 / 0.2)
    assert run["c"][-1] == pytest.approx(run["fixed_point"], abs=1e-6)
    remember = constant_gate_run(2.0, i=0.0, f=1.0, g=0.9, o=1.0, T=10)
    assert np.all(remember["c"] == 2.0) and remember["fixed_point"] is None
    grow = constant_gate_run(2.0, 1.0, 1.0, 1.0, 1.0, T=50)  # c grows by g each step, h cannot
    assert grow["c"][-1] == 52.0 and np.all(np.abs(grow["h"]) <= 1)


def test_gradient_experiment_shows_what_the_lesson_says():
    rnn, lstm = state_gradient_norms("RNN"), state_gradient_norms("LSTM")
    fb1 = state_gradient_norms("LSTM", forget_bias=1.0)
    assert rnn["h"].shape == lstm["c"].shape == (101,)
    # L = u . h_T, so dL/dh_T = u for both models
    assert rnn["h"][100] == pytest.approx(lstm["h"][100])
    # both vanish at default init, the RNN more; forget bias 1 keeps far more
    assert rnn["h"][100] / rnn["h"][1] > 1e21
    assert 1e18 < lstm["c"][100] / lstm["c"][1] < rnn["h"][100] / rnn["h"][1]
    assert lstm["c"][100] / lstm["c"][1] > 1e10 * fb1["c"][100] / fb1["c"][1]
    assert 0.45 < lstm["forget_mean"] < 0.55 and 0.7 < fb1["forget_mean"] < 0.76
    prod = lstm["forget_product"]
    assert prod[100] == 1 and np.all(np.diff(prod) > 0)  # more forget gates, smaller product


def test_gradient_experiment_is_deterministic_and_checks_its_arguments():
    a, b = state_gradient_norms("LSTM", T=20), state_gradient_norms("LSTM", T=20)
    np.testing.assert_array_equal(a["c"], b["c"])
    with pytest.raises(ValueError, match="kind"):
        state_gradient_norms("gru")
    with pytest.raises(ValueError, match="forget_bias"):
        state_gradient_norms("RNN", forget_bias=1.0)


def _pixels(**gates):
    values = dict(c_prev=1.5, i=0.5, f=0.8, g=0.6, o=0.7)
    values.update(gates)
    fig = plt.figure(figsize=(8, 3))
    draw_gates(fig, **values)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_explorer_figure_changes_with_every_gate():
    base = _pixels()
    for change in ({"c_prev": -1.0}, {"i": 0.55}, {"f": 0.85}, {"g": 0.65}, {"o": 0.75}):
        assert not np.array_equal(base, _pixels(**change)), change


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = gate_explorer(T=10)
    sliders = [*box.children[0].children, *box.children[1].children]
    assert [s.description for s in sliders] == ["c_prev", "forget f", "input i", "candidate g", "output o"]
    out = box.children[2]
    assert isinstance(out, widgets.Output)
    for slider in sliders:
        before = out.outputs[0]["data"]["image/png"]
        slider.value = slider.value + slider.step  # one step, as the browser test moves it
        assert len(out.outputs) == 1
        assert out.outputs[0]["data"]["image/png"] != before, slider.description
    assert plt.get_fignums() == []


def test_figures_have_titles_and_labelled_axes():
    fig = static_figure()
    assert len(fig.axes) == 2 * len(SCENARIOS)
    for ax in fig.axes:
        assert ax.get_ylabel() and ax.get_title()
    plt.close(fig)
    fig, ax = gradient_figure({"a": np.logspace(-5, 0, 11), "b": np.logspace(-3, 0, 11)})
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() and ax.get_yscale() == "log"
    plt.close(fig)


def test_the_numbers_the_lesson_quotes():
    # Sections 5 and 6 say: the RNN loses about 23 orders of magnitude over 100 steps, the
    # LSTM at default init about 20, with forget bias 1 about 7 (mean gate about 0.73), and
    # with bias 3 (mean gate about 0.95) the gradient at step 1 is about ten times larger.
    def orders(run, key):
        return np.log10(run[key][100] / run[key][1])
    assert round(orders(state_gradient_norms("RNN"), "h")) == 23
    assert round(orders(state_gradient_norms("LSTM"), "c")) == 20
    fb1, fb3 = state_gradient_norms("LSTM", forget_bias=1.0), state_gradient_norms("LSTM", forget_bias=3.0)
    assert round(orders(fb1, "c")) == 7 and round(fb1["forget_mean"], 2) == 0.73
    assert round(orders(fb3, "c")) == -1 and round(fb3["forget_mean"], 2) == 0.95


def test_direct_path_and_mean_gate_power_are_reported():
    run = state_gradient_norms("LSTM", T=20, hidden_size=6, input_size=3)
    assert run["direct"].shape == run["mean_gate_power"].shape == (21,)
    assert run["direct"][-1] == pytest.approx(run["c"][-1])  # at T the direct path is dL/dc_T itself
    assert run["mean_gate_power"][-1] == 1.0
    assert run["mean_gate_power"][0] == pytest.approx(run["forget_mean"] ** 20)
    # forget gates below 1 only shrink the direct path, step by step back
    assert (np.diff(run["direct"]) >= 0).all()


def test_lstm_gates_match_torch():
    from rnncourse.explore.lstm import lstm_gates
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, batch_first=True, dtype=torch.float64)
    x = torch.randn(2, 7, 3, dtype=torch.float64)
    g = lstm_gates(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    with torch.no_grad():
        out, (h_n, c_n) = lstm(x)
    assert set(g) == set("ifgoch") and g["f"].shape == (2, 7, 5)
    torch.testing.assert_close(g["h"], out, atol=1e-12, rtol=0)
    torch.testing.assert_close(g["c"][:, -1], c_n[0], atol=1e-12, rtol=0)
    assert ((g["f"] > 0) & (g["f"] < 1)).all()


def test_forget_gate_profile_summarises_a_torch_lstm():
    from rnncourse.explore.lstm import forget_gate_profile
    torch.manual_seed(1)
    lstm = torch.nn.LSTM(2, 6, batch_first=True)
    with torch.no_grad():
        lstm.bias_ih_l0[6 + 4] += 6.0  # unit 4's forget gate pushed towards 1
    p = forget_gate_profile(lstm, torch.randn(3, 9, 2))
    assert p["f_unit"].shape == (6,) and p["keeper"] == 4 and p["f_unit"][4] > 0.95
    assert p["c_keeper"].shape == (3, 9) and p["max_error"] < 1e-5
