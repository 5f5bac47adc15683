"""rnncourse.plots: the shared matplotlib helpers, as plain functions."""
import base64

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from rnncourse.plots import (  # noqa: E402
    live_figure, plot_curves, plot_hidden_trajectory, plot_state_bars, png_output,
)


@pytest.fixture
def ax():
    fig, ax = plt.subplots()
    yield ax
    plt.close(fig)


def test_plot_curves_labels_everything(ax):
    xs = np.arange(5)
    assert plot_curves(ax, xs, {"a": xs + 1.0, "b": 2.0 * xs + 1}, "step", "norm", "Title", logy=True) is ax
    assert [line.get_label() for line in ax.get_lines()] == ["a", "b"]
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("step", "norm", "Title")
    assert ax.get_yscale() == "log" and ax.get_legend() is not None


def test_trajectory_fades_after_the_step_and_marks_the_pulse(ax):
    traj = np.tanh(np.random.default_rng(0).normal(size=(11, 3)))  # (T+1, H)
    plot_hidden_trajectory(ax, traj, step=4, pulse_at=2)
    solid = ax.get_lines()[0::2][:3]
    assert all(len(line.get_xdata()) == 5 for line in solid)  # t = 0..4 drawn solid
    assert ax.get_xlim() == (0, 10) and "pulse" in [p.get_label() for p in ax.patches][0]


def test_state_bars(ax):
    plot_state_bars(ax, np.array([0.5, -0.2]), step=3)
    assert len(ax.patches) == 2 and "h_{3}" in ax.get_title()


def test_png_output_is_a_display_data_png():
    fig, ax = plt.subplots(figsize=(2, 1))
    out = png_output(fig)
    plt.close(fig)
    assert out["output_type"] == "display_data"
    assert base64.b64decode(out["data"]["image/png"])[:8] == b"\x89PNG\r\n\x1a\n"


def test_live_figure_redraws_when_a_control_changes():
    widgets = pytest.importorskip("ipywidgets")
    slider = widgets.IntSlider(value=1)
    calls = []

    def draw(fig):
        calls.append(slider.value)
        fig.subplots().plot([0, slider.value])

    open_before = len(plt.get_fignums())
    out = live_figure([slider], draw, figsize=(2, 1))
    assert calls == [1] and len(out.outputs) == 1
    first = out.outputs[0]["data"]["image/png"]
    slider.value = 3
    assert calls == [1, 3] and out.outputs[0]["data"]["image/png"] != first
    assert len(plt.get_fignums()) == open_before  # every redraw closes its figure
