"""The lesson-03 exploration's logic, called as plain functions, and the facts
the lesson prints (computed, never typed)."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.checks.vanishing import chain_norms  # noqa: E402
from rnncourse.explore.vanishing import (  # noqa: E402
    default_models, draw_gradients, gradient_explorer, input_gradient_norms, orthogonal,
    power_norms, radius_figure, ratio_figure, rnn_state_gradients, static_figure,
)


def test_orthogonal():
    Q = orthogonal(7, seed=3)
    assert torch.allclose(Q @ Q.T, torch.eye(7, dtype=torch.float64), atol=1e-12)
    assert not torch.allclose(Q, Q.T)  # not symmetric


def test_products_of_100_jacobians_at_radius_09_10_11():
    # docs/course.md, "Facts the course relies on": about 2.7e-5 / 1 / 1.4e4
    fig, norms = radius_figure(T=100)
    plt.close(fig)
    assert norms[0.9][-1] == pytest.approx(2.7e-5, rel=0.02)
    assert norms[1.0][-1] == pytest.approx(1.0, rel=1e-9)
    assert norms[1.1][-1] == pytest.approx(1.4e4, rel=0.02)
    assert norms[0.9][0] == 1.0 and len(norms[0.9]) == 101


def test_power_norms_equal_the_chain_at_state_zero():
    # with h = 0 every tanh' is 1, so the chain of lesson 03 is a power of W_hh
    W = 0.9 * orthogonal(5) + 0.1 * torch.randn(5, 5, dtype=torch.float64)
    states = torch.zeros(1, 13, 5, dtype=torch.float64)  # h_0 .. h_12
    chain = chain_norms(states, W)[0].numpy()  # entry t: ||W^(12 - t)||
    np.testing.assert_allclose(chain[::-1], power_norms(W, 12), rtol=1e-10)


def test_state_gradients_match_the_jacobian_chain():
    # the autograd norms of dL/dh_t are bounded by ||dh_T/dh_t|| (|u| = 1) and end at 1
    g = rnn_state_gradients(1.2, 15, hidden_size=6, seed=2)
    assert g.shape == (16,) and g[-1] == pytest.approx(1.0)
    assert np.all(g > 0)


def test_small_scale_vanishes_large_scale_explodes():
    assert rnn_state_gradients(0.8, 100)[0] < 1e-20
    assert rnn_state_gradients(3.0, 100)[0] > 1e5


def test_float32_norms_of_the_earliest_gradients_are_exactly_zero():
    # the gradients are not zero: their squares underflow inside the float32 norm
    g32 = rnn_state_gradients(0.8, 100, dtype=torch.float32)
    g32_up = rnn_state_gradients(0.8, 100, dtype=torch.float32, norm_in_float64=True)
    g64 = rnn_state_gradients(0.8, 100)
    assert (g32 == 0).sum() >= 10 and (g32_up == 0).sum() == 0 and (g64 == 0).sum() == 0
    np.testing.assert_allclose(g32_up, g64, rtol=1e-3)


def test_default_initialisation_ratios():
    """Issue #4: ~1e25 nn.RNN, ~1e20 nn.LSTM, ~1e7 with forget bias 1 (orders, seeds vary)."""
    ratios = {k: (lambda g: g[-1] / g[0])(input_gradient_norms(m)) for k, m in default_models().items()}
    assert 1e18 < ratios["nn.RNN"] < 1e28
    assert 1e15 < ratios["nn.LSTM"] < 1e24
    assert 1e4 < ratios["nn.LSTM, forget bias 1"] < 1e10
    assert ratios["nn.LSTM, forget bias 1"] < ratios["nn.LSTM"]
    fig = ratio_figure({k: input_gradient_norms(m, T=20) for k, m in default_models().items()})
    assert fig.axes[0].get_yscale() == "log"
    plt.close(fig)


def test_input_gradients_leave_the_model_clean():
    m = default_models()["nn.RNN"]
    input_gradient_norms(m, T=5)
    assert all(p.grad is None for p in m.parameters())


def _pixels(scale, T):
    fig = plt.figure(figsize=(6, 3))
    draw_gradients(fig, scale, T)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_explorer_figure_changes_with_the_sliders():
    base = _pixels(1.0, 50)
    assert not np.array_equal(base, _pixels(1.5, 50))
    assert not np.array_equal(base, _pixels(1.0, 80))


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = gradient_explorer(hidden_size=8)
    sliders = box.children[0].children
    assert [s.description for s in sliders] == ["W_hh scale", "length T"]
    out = box.children[1]
    assert isinstance(out, widgets.Output)
    for slider, value in zip(sliders, (2.0, 120)):
        before = out.outputs[0]["data"]["image/png"]
        slider.value = value
        assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"] != before
    assert plt.get_fignums() == []


def test_static_figure_has_labelled_log_axes():
    fig = static_figure(scales=(0.8, 2.0), T=20)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_yscale() == "log"
    plt.close(fig)


def test_explosion_run_explodes_without_clipping_and_trains_with_it():
    from rnncourse.explore.vanishing import explosion_run
    free = explosion_run(None, steps=40)
    tamed = explosion_run(torch.nn.utils.clip_grad_norm_, steps=40)
    assert free["losses"].shape == free["norms"].shape == (40,)
    assert np.nanmax(free["norms"]) > 1e20
    assert np.isfinite(tamed["losses"]).all() and tamed["losses"][-5:].mean() < tamed["losses"][0]
    assert np.nanmax(tamed["norms"]) > 1.0  # the norm logged is the one before clipping
    calls = []

    def spy(params, max_norm):
        calls.append(max_norm)
        return torch.nn.utils.clip_grad_norm_(params, max_norm)

    explosion_run(spy, max_norm=0.5, steps=3)
    assert calls == [0.5] * 3
