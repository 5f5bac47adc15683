"""The lesson-02 exploration's logic, called as plain functions."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import rnncourse  # noqa: E402
from rnncourse.explore.bptt import (  # noqa: E402
    contribution_explorer, contribution_norms, draw_contributions, static_figure,
    step_contributions, toy_setup, truncation_error,
)


def _shared_weight_grad(setup, T, scale, loss):
    """dL/dW_hh of the ordinary, shared weight, by autograd through rnncourse.RNN."""
    w = setup["weights"]
    H, I = w["W_ih"].shape
    rnn = rnncourse.RNN(I, H, dtype=torch.float64)
    rnn.load_state_dict({"weight_ih_l0": w["W_ih"], "weight_hh_l0": scale * w["W_hh"],
                         "bias_ih_l0": w["b_ih"], "bias_hh_l0": w["b_hh"]})
    out, _ = rnn(setup["x"][:T])  # unbatched: (T, H), h0 = 0
    L = out[-1] @ setup["v"] if loss == "last step" else (out @ setup["v"]).sum()
    L.backward()
    return rnn.weight_hh_l0.grad


@pytest.mark.parametrize("loss", ["last step", "every step"])
def test_the_terms_add_up_to_the_shared_weights_gradient(loss):
    setup = toy_setup(hidden_size=5, T=12)
    terms = step_contributions(setup["weights"], setup["x"], setup["v"], 0.8, loss)
    assert terms.shape == (12, 5, 5)
    torch.testing.assert_close(terms.sum(0), _shared_weight_grad(setup, 12, 0.8, loss))


def test_first_term_is_zero_from_a_zero_initial_state():
    setup = toy_setup(T=6)
    norms = contribution_norms(setup["weights"], setup["x"], setup["v"])
    assert norms.shape == (6,) and norms[0] == 0 and np.all(norms[1:] > 0)


def test_terms_fade_backwards_for_a_small_radius():
    setup = toy_setup(T=40)
    norms = contribution_norms(setup["weights"], setup["x"], setup["v"], 0.5)
    assert norms[10] < 1e-6 * norms[-1]


def test_truncation_error_falls_to_zero_at_full_length():
    setup = toy_setup(T=20)
    err = truncation_error(setup["weights"], setup["x"], setup["v"], [1, 5, 10, 20], 0.9)
    assert err[-1] == pytest.approx(0, abs=1e-12)
    assert np.all(np.diff(err) <= 1e-12) and err[0] > 0.01


def test_unknown_loss_is_refused():
    setup = toy_setup(T=4)
    with pytest.raises(ValueError, match="loss must be one of"):
        step_contributions(setup["weights"], setup["x"], setup["v"], loss="first")


def _pixels(scale=1.0, T=30, loss="last step"):
    fig = plt.figure(figsize=(6, 3))
    draw_contributions(fig, toy_setup(), scale, T, loss)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_explorer_figure_changes_with_every_control():
    base = _pixels()
    assert not np.array_equal(base, _pixels(scale=1.5))
    assert not np.array_equal(base, _pixels(T=20))
    assert not np.array_equal(base, _pixels(loss="every step"))


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = contribution_explorer(max_T=20)
    scale, length = box.children[0].children
    loss, out = box.children[1], box.children[2]
    assert [scale.description, length.description, loss.description] == ["W_hh scale", "length T", "loss at"]
    assert isinstance(out, widgets.Output)
    for control, value in ((scale, 1.7), (length, 9), (loss, "every step")):
        before = out.outputs[0]["data"]["image/png"]
        control.value = value
        assert len(out.outputs) == 1
        assert out.outputs[0]["data"]["image/png"] != before
    assert plt.get_fignums() == []


def test_static_figure_has_labelled_axes():
    fig = static_figure(toy_setup(), scales=(0.5, 1.5), T=10)
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
        assert ax.get_legend() is not None
    plt.close(fig)


def test_train_tiny_rnn_learns_and_a_correct_backward_gives_the_same_curve():
    from rnncourse.explore.bptt import train_tiny_rnn
    from rnncourse.functional import rnn_step  # noqa: F401  (the package's forward)

    def backward_by_autograd(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
        leaves = [t.clone().requires_grad_() for t in (x, h0, W_ih, W_hh, b_ih, b_hh)]
        h, states = leaves[1], []
        for t in range(x.shape[1]):
            h = torch.tanh(leaves[0][:, t] @ leaves[2].T + leaves[4] + h @ leaves[3].T + leaves[5])
            states.append(h)
        return torch.autograd.grad(torch.stack(states, 1), leaves, grad_outputs=dh)

    auto = train_tiny_rnn(None, steps=60)
    mine = train_tiny_rnn(backward_by_autograd, steps=60)
    assert auto.shape == (60,) and auto[-5:].mean() < 0.7 * auto[0]
    np.testing.assert_allclose(mine, auto, atol=1e-10)

    def wrong(x, h0, W_ih, W_hh, b_ih, b_hh, dh):  # drops the path through time
        dx, dh0, dW_ih, dW_hh, db_ih, db_hh = backward_by_autograd(x, h0, W_ih, W_hh, b_ih, b_hh, dh)
        return dx, dh0, dW_ih, torch.zeros_like(dW_hh), db_ih, db_hh

    assert np.abs(train_tiny_rnn(wrong, steps=60) - auto).max() > 1e-3
