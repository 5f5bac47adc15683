r"""Exploration for lesson 02: how much each time step adds to the gradient of W_hh.

The gradient of a shared weight is a sum over time, one term per step:
:math:`\partial L/\partial W_{hh} = \sum_t \delta z_t^\top h_{t-1}`. To see the
terms without deriving anything, give every step its *own copy* of W_hh, run the
RNN, and ask autograd for each copy's gradient: copy t's gradient is step t's
term, and the copies' gradients add up to the shared weight's.

The logic is plain functions (tested without a browser); ``contribution_explorer``
wraps them in ipywidgets. The RNN is lesson 01's toy RNN (W_hh normalised to
spectral radius 1, so ``recurrent_scale`` is its spectral radius).
"""
from __future__ import annotations

import numpy as np
import torch

from rnncourse.explore.rnn import toy_rnn
from rnncourse.functional import folded_bias, input_projection, rnn_step
from rnncourse.plots import plot_curves, live_figure

LOSSES = ("last step", "every step")
_LOSS_TEXT = {"last step": "loss at the last step", "every step": "loss at every step"}


def toy_setup(hidden_size: int = 8, input_size: int = 2, T: int = 60, seed: int = 2) -> dict:
    """Seeded toy weights, an input sequence x (T, I) and a readout vector v (H,),
    all float64: the loss is v . h_T (or the sum of v . h_t over every step)."""
    gen = torch.Generator().manual_seed(seed + 1000)
    return {
        "weights": toy_rnn(hidden_size, input_size, seed),
        "x": torch.randn(T, input_size, generator=gen, dtype=torch.float64),
        "v": torch.randn(hidden_size, generator=gen, dtype=torch.float64),
    }


def step_contributions(weights: dict, x: torch.Tensor, v: torch.Tensor,
                       recurrent_scale: float = 1.0, loss: str = "last step") -> torch.Tensor:
    """Each step's term of dL/dW_hh, shape (T, H, H); their sum is dL/dW_hh.

    ``x`` is one sequence (T, I), h0 = 0. ``loss`` is "last step" (L = v . h_T) or
    "every step" (L = sum_t v . h_t).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    W_hh = (recurrent_scale * weights["W_hh"]).detach()
    copies = [W_hh.clone().requires_grad_() for _ in range(x.shape[0])]  # one per step
    gx = input_projection(x, weights["W_ih"], folded_bias(weights["b_ih"], weights["b_hh"]))  # (T, H)
    h = torch.zeros(1, W_hh.shape[0], dtype=x.dtype)  # (1, H)
    total = x.new_zeros(())
    with torch.enable_grad():
        for t, W in enumerate(copies):
            h = rnn_step(gx[t:t + 1], h, W)  # (1, H): step t uses its own copy of W_hh
            if loss == "every step":
                total = total + h[0] @ v
        if loss == "last step":
            total = h[0] @ v
        grads = torch.autograd.grad(total, copies)
    return torch.stack(grads).detach()  # (T, H, H)


def contribution_norms(weights: dict, x: torch.Tensor, v: torch.Tensor,
                       recurrent_scale: float = 1.0, loss: str = "last step") -> np.ndarray:
    """The Frobenius norm of each step's term, a (T,) array (step t = 1..T)."""
    c = step_contributions(weights, x, v, recurrent_scale, loss)
    return c.flatten(1).norm(dim=1).numpy()


def truncation_error(weights: dict, x: torch.Tensor, v: torch.Tensor, ks,
                     recurrent_scale: float = 1.0) -> np.ndarray:
    """For a loss at the last step: the relative error ||g_k - g|| / ||g|| of the
    gradient g_k that keeps only the last k steps' terms (backpropagating k steps),
    one value per k in ``ks``."""
    c = step_contributions(weights, x, v, recurrent_scale, "last step")  # (T, H, H)
    full = c.sum(0)
    return np.array([float((c[c.shape[0] - k:].sum(0) - full).norm() / full.norm()) for k in ks])


def draw_contributions(fig, setup: dict, recurrent_scale: float, T: int, loss: str) -> None:
    """The explorer's figure: each step's share of the gradient, on a log scale."""
    x = setup["x"][:T]
    norms = contribution_norms(setup["weights"], x, setup["v"], recurrent_scale, loss)
    fig.clear()
    ax = fig.subplots()
    t = np.arange(1, T + 1)
    ax.bar(t, norms, color="C0" if loss == "last step" else "C1", width=0.8)
    ax.set_yscale("log")
    positive = norms[norms > 0]
    low = positive.min() / 3 if positive.size else 1e-3
    ax.set_ylim(low, max(10.0, norms.max() * 3))
    ax.set_xlim(0, T + 1)
    ax.set_xlabel("time step $t$")
    ax.set_ylabel(r"$\|$step $t$'s term of $\partial L/\partial W_{hh}\|$ (log scale)")
    ax.set_title(f"Each step's term, {_LOSS_TEXT[loss]}, spectral radius {recurrent_scale:.2f}, T = {T}")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()


def static_figure(setup: dict, scales=(0.5, 1.0, 1.5), T: int = 40):
    """Left: the per-step terms for a loss at the last step, one line per spectral
    radius. Right: the same with the loss summed over every step."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    t = np.arange(1, T + 1)
    for ax, loss in zip(axes, LOSSES):
        # step 1's term is exactly 0 (h0 = 0): left out rather than drawn as a cliff
        curves = {f"radius {s}": np.where(t > 1, contribution_norms(
                      setup["weights"], setup["x"][:T], setup["v"], s, loss), np.nan)
                  for s in scales}
        plot_curves(ax, t, curves, "time step $t$", "norm of step $t$'s term (log scale)",
                    f"Each step's term in dL/dW_hh, {_LOSS_TEXT[loss]}", logy=True)
    fig.tight_layout()
    return fig


def contribution_explorer(hidden_size: int = 8, max_T: int = 60, seed: int = 2):
    """A slider for the spectral radius of W_hh and one for the length T, and a
    choice of loss; the bar chart of per-step terms redraws on every change."""
    import ipywidgets as widgets

    setup = toy_setup(hidden_size, 2, max_T, seed)
    scale = widgets.FloatSlider(value=1.0, min=0.1, max=2.5, step=0.05, description="W_hh scale",
                                continuous_update=False)
    length = widgets.IntSlider(value=30, min=2, max=max_T, step=1, description="length T",
                               continuous_update=False)
    # A Dropdown, not ToggleButtons: the browser test's "toggle button" selector also
    # matches ToggleButtons' active option, whose click changes nothing.
    loss = widgets.Dropdown(options=list(LOSSES), value="last step", description="loss at")

    def draw(fig):
        draw_contributions(fig, setup, scale.value, length.value, loss.value)

    out = live_figure((scale, length, loss), draw, figsize=(9, 3.6))
    return widgets.VBox([widgets.HBox([scale, length]), loss, out])
