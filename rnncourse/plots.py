"""Matplotlib helpers shared by the notebooks and the explorations.

Each takes an ``ax`` to draw on and returns it, so a notebook can lay out
several panels, and a widget can redraw one figure from scratch on every change.
"""
from __future__ import annotations

import base64
import io
from typing import Sequence

import numpy as np


def plot_hidden_trajectory(ax, traj: np.ndarray, step: int | None = None,
                           pulse_at: int | None = None, title: str = "Hidden state over time",
                           legend: bool = True):
    """Each hidden unit's value against the time step.

    ``traj`` is (T+1, H) with row 0 the initial state. Up to ``step`` the lines
    are solid; after it they are faded, so a widget can walk through time.
    ``pulse_at`` marks the step t whose input x_t was non-zero (1-based, like h_t).
    """
    T = traj.shape[0] - 1
    step = T if step is None else int(step)
    t = np.arange(T + 1)
    for j in range(traj.shape[1]):
        line, = ax.plot(t[: step + 1], traj[: step + 1, j], marker="o", ms=3, label=f"$h^{{({j + 1})}}$")
        ax.plot(t[step:], traj[step:, j], color=line.get_color(), alpha=0.2)
    if pulse_at is not None:
        ax.axvspan(pulse_at - 0.5, pulse_at + 0.5, color="0.85", label="input pulse")
    ax.axvline(step, color="k", lw=0.8, ls="--")
    ax.set_xlim(0, T)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xlabel("time step $t$")
    ax.set_ylabel("$h_t$ (each unit)")
    ax.set_title(title)
    if legend:
        ax.legend(loc="lower right", fontsize="small")
    return ax


def plot_state_bars(ax, h: np.ndarray, step: int):
    """The hidden state at one step as a bar per unit (tanh keeps each in (-1, 1))."""
    units = np.arange(1, len(h) + 1)
    ax.bar(units, h, color=[f"C{j}" for j in range(len(h))])
    ax.axhline(0, color="k", lw=0.8)
    ax.set_ylim(-1.05, 1.05)
    ax.set_xticks(units)
    ax.set_xlabel("hidden unit")
    ax.set_ylabel("value")
    ax.set_title(f"$h_{{{step}}}$, norm {np.linalg.norm(h):.3f}")
    return ax


def plot_curves(ax, xs: np.ndarray, curves: dict, xlabel: str, ylabel: str, title: str,
                logy: bool = False, styles: Sequence[str] = ("-o", "-s", "-^", "-v", "-D")):
    """Several labelled curves over a shared x axis (e.g. one per weight scale)."""
    for k, (label, ys) in enumerate(curves.items()):
        ax.plot(xs, ys, styles[k % len(styles)], ms=3, label=label)
    if logy:
        ax.set_yscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def png_output(fig) -> dict:
    """A figure as one Jupyter ``display_data`` output (PNG).

    Explorers assign it to their ``ipywidgets.Output``'s ``outputs`` directly:
    the kernel then holds every redraw, whether or not a front end is listening.
    """
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    return {"output_type": "display_data", "metadata": {},
            "data": {"image/png": png, "text/plain": f"<Figure {fig.get_size_inches()} in>"}}


def live_figure(controls, draw, figsize):
    """An ``ipywidgets.Output`` showing ``draw(fig)``, drawn now and again whenever
    one of ``controls`` changes value: the redraw loop of every exploration.

    The Output's content is set directly (not ``with out: display(fig)``): the
    kernel then holds every redraw, whatever front end is or isn't listening.
    """
    import ipywidgets as widgets
    import matplotlib.pyplot as plt

    out = widgets.Output()

    def redraw(_change=None):
        fig = plt.figure(figsize=figsize)
        draw(fig)
        out.outputs = (png_output(fig),)
        plt.close(fig)

    for control in controls:
        control.observe(redraw, names="value")
    redraw()
    return out
