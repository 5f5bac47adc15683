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


RADII = np.round(np.arange(0.2, 2.501, 0.05), 2)  # the radii the decay factor is measured at (0.95 included)


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
    radii = RADII
    factors = decay_factor(weights, radii, T, pulse_step)
    plot_curves(ax2, radii, {"measured decay per step": factors, "factor = radius": radii},
                "spectral radius of $W_{hh}$", "decay factor per step",
                "Decay per step of this RNN's pulse trace")
    ax2.set_ylim(0, 1.2)
    fig.tight_layout()
    return fig, mem


def pulse_gradient(weights: dict, recurrent_scale: float, T: int = 100, pulse_step: int = 3) -> float:
    """Spectral norm of dh_T / dh_{pulse_step} along the pulse run: the product of the
    step Jacobians diag(1 - h_t^2) (s W_hh) for t = pulse_step+1..T. It says how much a
    change of the state at the pulse still moves h_T, i.e. the gradient a loss at T sends back."""
    x = pulse_sequence(T, pulse_step, 1.0, weights["W_ih"].shape[1])
    traj = hidden_state_trajectory(x, **weights, recurrent_scale=recurrent_scale)  # (T+1, H)
    W = recurrent_scale * weights["W_hh"].numpy()  # (H, H)
    J = np.eye(W.shape[0])
    for t in range(pulse_step + 1, T + 1):
        J = ((1.0 - traj[t] ** 2)[:, None] * W) @ J  # tanh' at step t times W_hh, chained
    return float(np.linalg.norm(J, 2))


def memory_regimes(hidden_sizes=(3, 8, 32), radii=(0.5, 0.95, 1.5, 2.5), seeds=range(6),
                   T: int = 100, pulse_step: int = 3) -> list[dict]:
    """The pulse experiment over several sizes, seeds and spectral radii. One record per run:
    {"H", "radius", "seed", "distance" (||h_T^pulse - h_T^quiet||), "gradient" (pulse_gradient),
    "settled" (whether the quiet run has stopped moving: ||h_T - h_{T-1}|| < 1e-6)}.

    A small radius fades (distance ~0, gradient tiny). A large one keeps a distance, but
    either the state never settles (oscillating or chaotic: the gradient is often huge) or
    it settles into one of several saturated fixed points, where the gradient vanishes."""
    records = []
    quiet = torch.zeros(T, 1, dtype=torch.float64)
    for H in hidden_sizes:
        for seed in seeds:
            weights = toy_rnn(H, 1, seed)
            for s in radii:
                d = pulse_memory(weights, [s], T, pulse_step)[float(s)]
                q = hidden_state_trajectory(quiet, **weights, recurrent_scale=s)
                records.append({"H": H, "radius": float(s), "seed": seed, "distance": float(d[T]),
                                "gradient": pulse_gradient(weights, s, T, pulse_step),
                                "settled": bool(np.linalg.norm(q[T] - q[T - 1]) < 1e-6)})
    return records


def regimes_figure(records: list[dict]):
    """Left: the pulse's distance at the last step against the radius, every seed a dot,
    one colour per hidden size. Right: the gradient norm dh_T/dh_pulse (log scale)."""
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8))
    sizes = sorted({r["H"] for r in records})
    T = None
    for j, H in enumerate(sizes):
        rows = [r for r in records if r["H"] == H]
        jitter = (j - (len(sizes) - 1) / 2) * 0.04
        xs = [r["radius"] + jitter for r in rows]
        ax1.plot(xs, [r["distance"] for r in rows], "o", color=f"C{j}", alpha=0.6, label=f"H = {H}")
        ax2.plot(xs, [max(r["gradient"], 1e-40) for r in rows], "o", color=f"C{j}", alpha=0.6, label=f"H = {H}")
    ax1.set_yscale("symlog", linthresh=1e-2)
    ax1.set_xlabel("spectral radius of $W_{hh}$ (dots: seeds)")
    ax1.set_ylabel(r"$\|h_{100}^{pulse} - h_{100}^{quiet}\|$")
    ax1.set_title("Is the pulse still visible at t = 100?")
    ax2.set_yscale("log")
    ax2.axhline(1.0, color="0.5", ls="--", lw=1)
    ax2.set_xlabel("spectral radius of $W_{hh}$ (dots: seeds)")
    ax2.set_ylabel(r"$\|\partial h_{100} / \partial h_3\|$ (log scale)")
    ax2.set_title("Can a gradient reach the pulse?")
    for ax in (ax1, ax2):
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


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
