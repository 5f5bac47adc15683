"""Exploration for lesson 01: a small RNN's hidden state, step by step.

The logic is plain functions (tested without a browser); ``trajectory_explorer``
wraps them in ipywidgets. The story: feed a single input pulse into an RNN and
watch the state. With W_hh scaled small the pulse fades and the state settles;
scaled large, the state swings to the edges of tanh and keeps the pulse's trace.
"""
from __future__ import annotations

import numpy as np
import torch

from rnncourse.functional import folded_bias, input_projection, rnn_step
from rnncourse.plots import plot_curves, plot_hidden_trajectory, plot_state_bars, live_figure


def toy_rnn(hidden_size: int = 3, input_size: int = 1, seed: int = 2) -> dict:
    """Seeded weights (float64) in PyTorch's layout, with W_hh normalised to
    spectral radius 1, so that ``recurrent_scale`` below *is* its spectral radius."""
    gen = torch.Generator().manual_seed(seed)
    W_hh = torch.randn(hidden_size, hidden_size, generator=gen, dtype=torch.float64)
    W_hh = W_hh / torch.linalg.eigvals(W_hh).abs().max()
    return {
        "W_ih": torch.randn(hidden_size, input_size, generator=gen, dtype=torch.float64),
        "W_hh": W_hh,
        "b_ih": 0.1 * torch.randn(hidden_size, generator=gen, dtype=torch.float64),
        "b_hh": torch.zeros(hidden_size, dtype=torch.float64),
    }


def pulse_sequence(T: int = 30, pulse_step: int = 3, size: float = 1.0,
                   input_size: int = 1) -> torch.Tensor:
    """A (T, I) sequence of zeros except x_{pulse_step} (1-based, like h_t) = size."""
    if not 1 <= pulse_step <= T:
        raise ValueError(f"pulse_step must be in 1..{T}, got {pulse_step}")
    x = torch.zeros(T, input_size, dtype=torch.float64)
    x[pulse_step - 1] = size
    return x


def hidden_state_trajectory(x: torch.Tensor, W_ih: torch.Tensor, W_hh: torch.Tensor,
                            b_ih: torch.Tensor, b_hh: torch.Tensor, h0: torch.Tensor | None = None,
                            recurrent_scale: float = 1.0) -> np.ndarray:
    """Run one sequence x (T, I) through h_t = tanh(W_ih x_t + b_ih + s W_hh h_{t-1} + b_hh)
    (``rnncourse.functional.rnn_step``) and return every state as a (T+1, H) float64
    array, row 0 being h0 (zeros by default)."""
    if x.dim() != 2:
        raise ValueError(f"x should be one sequence of shape (T, I), got {tuple(x.shape)}")
    W_hh = recurrent_scale * W_hh
    gx = input_projection(x, W_ih, folded_bias(b_ih, b_hh))  # (T, H), every step at once
    h = torch.zeros(1, W_hh.shape[0], dtype=x.dtype) if h0 is None else h0.reshape(1, -1)  # (1, H)
    states = [h]
    for t in range(x.shape[0]):
        h = rnn_step(gx[t:t + 1], h, W_hh)  # (1, H)
        states.append(h)
    return torch.cat(states).detach().cpu().double().numpy()  # (T+1, H)


def pulse_memory(weights: dict, scales, T: int = 30, pulse_step: int = 3,
                 size: float = 1.0) -> dict:
    """How long the RNN remembers a pulse: for each W_hh scale, the distance
    ||h_t(with pulse) - h_t(without)|| at every step t = 0..T, as a (T+1,) array."""
    quiet = torch.zeros(T, weights["W_ih"].shape[1], dtype=torch.float64)
    pulse = pulse_sequence(T, pulse_step, size, weights["W_ih"].shape[1])
    out = {}
    for s in scales:
        a = hidden_state_trajectory(pulse, **weights, recurrent_scale=s)
        b = hidden_state_trajectory(quiet, **weights, recurrent_scale=s)
        out[float(s)] = np.linalg.norm(a - b, axis=1)
    return out


def draw_trajectory(fig, weights: dict, recurrent_scale: float, size: float, step: int,
                    T: int = 30, pulse_step: int = 3) -> None:
    """Draw the explorer's two panels (trajectory, state at ``step``) into ``fig``."""
    traj = hidden_state_trajectory(pulse_sequence(T, pulse_step, size, weights["W_ih"].shape[1]),
                                   **weights, recurrent_scale=recurrent_scale)
    fig.clear()
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 1]})
    plot_hidden_trajectory(ax1, traj, step=step, pulse_at=pulse_step,
                           title=f"Hidden state, W_hh scaled to spectral radius {recurrent_scale:.2f}")
    plot_state_bars(ax2, traj[step], step)
    fig.tight_layout()


def static_figure(weights: dict, scales=(0.5, 1.0, 2.0), T: int = 30, pulse_step: int = 3):
    """One trajectory panel per scale: the explorer's story where widgets don't render."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(scales), figsize=(4.2 * len(scales), 3.4), sharey=True)
    for ax, s in zip(np.atleast_1d(axes), scales):
        traj = hidden_state_trajectory(pulse_sequence(T, pulse_step, 1.0, weights["W_ih"].shape[1]),
                                       **weights, recurrent_scale=s)
        plot_hidden_trajectory(ax, traj, pulse_at=pulse_step, title=f"spectral radius of W_hh = {s}",
                               legend=ax is np.atleast_1d(axes)[0])
    fig.tight_layout()
    return fig


def decay_factor(weights: dict, scales, T: int = 30, pulse_step: int = 3,
                 window: tuple = (10, 20)) -> np.ndarray:
    """The per-step factor by which the pulse's trace shrinks, measured as the
    geometric mean of d_{t+1} / d_t over ``window`` (one value per scale)."""
    mem = pulse_memory(weights, scales, T, pulse_step)
    a, b = window
    return np.array([(d[b] / d[a]) ** (1.0 / (b - a)) for d in mem.values()])


def memory_figure(weights: dict, scales=(0.5, 0.8, 0.95, 1.5), T: int = 30, pulse_step: int = 3):
    """Left: the pulse_memory curves on a log scale. Right: the measured decay
    factor against the spectral radius of W_hh, with the line factor = radius."""
    import matplotlib.pyplot as plt
    mem = pulse_memory(weights, scales, T, pulse_step)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    t = np.arange(T + 1)
    # before the pulse both runs are identical (distance 0): the log scale starts at the pulse
    curves = {f"radius {s}": np.where(t >= pulse_step, d, np.nan) for s, d in mem.items()}
    plot_curves(ax1, t, curves, "time step $t$", r"$\|h_t^{pulse} - h_t^{quiet}\|$",
                "How long the state remembers one input pulse", logy=True)
    radii = np.linspace(0.2, 2.5, 24)
    factors = decay_factor(weights, radii, T, pulse_step)
    plot_curves(ax2, radii, {"measured decay per step": factors, "factor = radius": radii},
                "spectral radius of $W_{hh}$", "decay factor per step",
                "Fading memory: the factor stays below 1")
    ax2.set_ylim(0, 1.2)
    fig.tight_layout()
    return fig, mem


def trajectory_explorer(hidden_size: int = 3, T: int = 30, pulse_step: int = 3, seed: int = 2):
    """Sliders for the W_hh scale, the pulse size and the step; the figure redraws on change."""
    import ipywidgets as widgets

    weights = toy_rnn(hidden_size, 1, seed)
    scale = widgets.FloatSlider(value=0.9, min=0.0, max=2.5, step=0.05, description="W_hh scale",
                                continuous_update=False)
    size = widgets.FloatSlider(value=1.0, min=-3.0, max=3.0, step=0.1, description="pulse size",
                               continuous_update=False)
    step = widgets.IntSlider(value=pulse_step, min=0, max=T, step=1, description="step t",
                             continuous_update=False)

    def draw(fig):
        draw_trajectory(fig, weights, scale.value, size.value, step.value, T, pulse_step)

    out = live_figure((scale, size, step), draw, figsize=(10, 3.6))
    return widgets.VBox([widgets.HBox([scale, size, step]), out])
