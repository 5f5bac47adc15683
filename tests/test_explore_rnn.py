"""The lesson-01 exploration's logic, called as plain functions."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnncourse  # noqa: E402
from rnncourse.explore.rnn import (  # noqa: E402
    decay_factor, draw_trajectory, hidden_state_trajectory, pulse_memory, pulse_sequence,
    static_figure, toy_rnn, trajectory_explorer,
)


def test_toy_rnn_spectral_radius_is_one():
    w = toy_rnn(hidden_size=4, input_size=2, seed=5)
    assert torch.linalg.eigvals(w["W_hh"]).abs().max().item() == pytest.approx(1.0)
    assert w["W_ih"].shape == (4, 2)


def test_pulse_sequence():
    x = pulse_sequence(T=6, pulse_step=2, size=1.5)
    assert x.shape == (6, 1)
    assert x[:, 0].tolist() == [0, 1.5, 0, 0, 0, 0]
    with pytest.raises(ValueError):
        pulse_sequence(T=6, pulse_step=7)


def test_trajectory_matches_the_reference_rnn():
    w = toy_rnn(hidden_size=3, input_size=2, seed=1)
    x = torch.randn(7, 2, dtype=torch.float64)
    traj = hidden_state_trajectory(x, **w, recurrent_scale=0.7)
    assert traj.shape == (8, 3)
    assert np.all(traj[0] == 0)
    rnn = rnncourse.RNN(2, 3, dtype=torch.float64)
    rnn.load_state_dict({"weight_ih_l0": w["W_ih"], "weight_hh_l0": 0.7 * w["W_hh"],
                         "bias_ih_l0": w["b_ih"], "bias_hh_l0": w["b_hh"]})
    with torch.no_grad():
        out, h_n = rnn(x)  # unbatched: (T, H), (1, H)
    np.testing.assert_allclose(traj[1:], out.numpy(), atol=1e-12)


def test_trajectory_rejects_a_batch():
    w = toy_rnn()
    with pytest.raises(ValueError, match=r"\(T, I\)"):
        hidden_state_trajectory(torch.zeros(2, 5, 1, dtype=torch.float64), **w)


def test_pulse_memory_is_zero_before_the_pulse_and_fades():
    mem = pulse_memory(toy_rnn(), scales=[0.5], T=20, pulse_step=4)[0.5]
    assert mem.shape == (21,)
    assert np.all(mem[:4] == 0) and mem[4] > 0.1
    assert mem[20] < 1e-4 * mem[4]


def test_decay_factor_follows_the_radius_while_tanh_is_near_linear():
    factors = decay_factor(toy_rnn(), [0.3, 0.5, 0.7])
    np.testing.assert_allclose(factors, [0.3, 0.5, 0.7], atol=0.05)
    assert np.all(decay_factor(toy_rnn(), [1.0, 1.5, 2.0]) < 1)


def _pixels(scale, size=1.0, step=10):
    fig = plt.figure(figsize=(6, 3))
    draw_trajectory(fig, toy_rnn(), scale, size, step)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_explorer_figure_changes_with_the_sliders():
    base = _pixels(0.9)
    assert not np.array_equal(base, _pixels(1.5))
    assert not np.array_equal(base, _pixels(0.9, step=20))
    assert not np.array_equal(base, _pixels(0.9, size=-1.0))


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = trajectory_explorer(T=12)
    sliders = box.children[0].children
    assert [s.description for s in sliders] == ["W_hh scale", "pulse size", "step t"]
    out = box.children[1]
    assert isinstance(out, widgets.Output)
    for slider, value in zip(sliders, (1.7, -2.0, 9)):
        before = out.outputs[0]["data"]["image/png"]
        slider.value = value  # each slider redraws the figure
        assert len(out.outputs) == 1
        assert out.outputs[0]["data"]["image/png"] != before
    assert plt.get_fignums() == []  # figures are closed, not left to pile up


def test_static_figure_has_labelled_axes():
    fig = static_figure(toy_rnn(), scales=(0.5, 2.0), T=10)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(fig)


def test_pulse_gradient_is_the_product_of_step_jacobians():
    # against autograd through the same steps
    from rnncourse.explore.rnn import pulse_gradient
    from rnncourse.functional import folded_bias, input_projection, rnn_step
    w = toy_rnn(4, 1, seed=1)
    s, T, p = 1.3, 12, 3
    x = pulse_sequence(T, p, 1.0, 1)
    gx = input_projection(x, w["W_ih"], folded_bias(w["b_ih"], w["b_hh"]))
    h = torch.zeros(1, 4, dtype=torch.float64)
    for t in range(p):
        h = rnn_step(gx[t:t + 1], h, s * w["W_hh"])
    h_p = h.detach().requires_grad_(True)

    def run(h):
        for t in range(p, T):
            h = rnn_step(gx[t:t + 1], h, s * w["W_hh"])
        return h[0]

    J = torch.autograd.functional.jacobian(run, h_p)[:, 0, :]  # (H, H)
    assert pulse_gradient(w, s, T, p) == pytest.approx(torch.linalg.matrix_norm(J, 2).item(), rel=1e-9)


def test_memory_regimes_two_regimes():
    from rnncourse.explore.rnn import memory_regimes, regimes_figure
    rec = memory_regimes(hidden_sizes=(3, 16), radii=(0.5, 2.5), seeds=range(3), T=60)
    assert len(rec) == 2 * 2 * 3
    assert set(rec[0]) == {"H", "radius", "seed", "distance", "gradient", "settled"}
    small = [r for r in rec if r["radius"] == 0.5]
    assert all(r["distance"] < 1e-6 and r["settled"] and r["gradient"] < 1e-10 for r in small)
    big = [r for r in rec if r["radius"] == 2.5 and r["H"] == 16]
    assert any(r["distance"] > 0.1 for r in big)  # a large radius can keep a trace...
    assert not any(r["settled"] and r["distance"] > 0.1 for r in rec)  # ...never as a settled state
    fig = regimes_figure(rec)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() and ax.get_legend()
    plt.close(fig)


def test_decay_grid_holds_the_printed_radii():
    from rnncourse.explore.rnn import RADII
    assert {0.5, 0.8, 0.95, 1.5} <= set(RADII.tolist())
