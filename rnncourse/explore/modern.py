"""Lesson 11: the measured cost curves (training time against T, generation time and
memory against context length) and a picture of the parallel scan's rounds.

The numbers come from ``data/modern/`` (``python -m rnncourse.experiments.modern``);
the functions here turn them into tables and figures, and ``cost_explorer`` wraps
them in ipywidgets: a model to follow, a sequence length to read the curves at,
and the length T of the scan whose rounds are drawn.
"""
from __future__ import annotations

import numpy as np

from rnncourse.scan import reaches, scan_rounds

STYLE = {"GRU (rnncourse)": "-o", "nn.GRU": "-s", "minGRU loop": "-^", "minGRU scan": "-v", "attention": "-D"}


# ----------------------------------------------------------------------------
# tables

def seconds_at(timing: dict, name: str, T: int) -> float | None:
    """Seconds per training step of ``name`` at length T (None: not timed there)."""
    if name not in timing["seconds"]:
        raise KeyError(f"no model {name!r} in the timing (models: {', '.join(timing['seconds'])})")
    return timing["seconds"][name][timing["lengths"].index(T)]


def fastest(timing: dict) -> dict:
    """T -> the model with the shortest training step at that length."""
    out = {}
    for i, T in enumerate(timing["lengths"]):
        timed = {n: s[i] for n, s in timing["seconds"].items() if s[i] is not None}
        out[T] = min(timed, key=timed.get)
    return out


def ratio(timing: dict, slow: str, fast: str, T: int) -> float | None:
    """How many times longer ``slow``'s step takes than ``fast``'s at length T."""
    a, b = seconds_at(timing, slow, T), seconds_at(timing, fast, T)
    return None if a is None or b is None else a / b


def growth(timing: dict, name: str) -> float | None:
    """The exponent p of time ~ T^p between the two longest timed lengths."""
    pts = [(T, s) for T, s in zip(timing["lengths"], timing["seconds"][name]) if s is not None]
    if len(pts) < 2:
        return None
    (T1, s1), (T2, s2) = pts[-2], pts[-1]
    return float(np.log(s2 / s1) / np.log(T2 / T1))


# ----------------------------------------------------------------------------
# figures

def plot_timing(ax, timing: dict, highlight: str | None = None, T: int | None = None):
    """Seconds per training step against T, log-log, one line per model."""
    Ts = timing["lengths"]
    for name, secs in timing["seconds"].items():
        pts = [(t, 1e3 * s) for t, s in zip(Ts, secs) if s is not None]
        if not pts:
            continue
        x, y = zip(*pts)
        bold = highlight is None or name == highlight
        ax.plot(x, y, STYLE.get(name, "-o"), ms=4, label=name, alpha=1.0 if bold else 0.35,
                lw=2.2 if name == highlight else 1.2)
    if T is not None:
        ax.axvline(T, color="k", lw=0.8, ls=":")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("sequence length T (log scale)")
    ax.set_ylabel("one training step (ms, log scale)")
    ax.set_title(f"Training time against T ({timing['device_name']})")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


def plot_generation(ax_time, ax_mem, memory: dict, n: int | None = None):
    """Per generated token, against the context length: time (left) and kept bytes (right)."""
    rows = memory["rows"]
    ns = [r["n"] for r in rows]
    for ax, key, unit, scale in ((ax_time, "seconds", "µs", 1e6), (ax_mem, "bytes", "bytes", 1)):
        ax.plot(ns, [scale * r[f"rnn_{key}"] for r in rows], "-^", ms=4, label="minGRU: its state")
        ax.plot(ns, [scale * r[f"attention_{key}"] for r in rows], "-D", ms=4, label="attention: its cache")
        if n is not None:
            ax.axvline(n, color="k", lw=0.8, ls=":")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("context length n (tokens so far, log scale)")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    ax_time.set_ylabel("time for one more token (µs, log)")
    ax_time.set_title("Generating: time per token")
    ax_mem.set_ylabel("memory kept between tokens (bytes, log)")
    ax_mem.set_title("Generating: what is kept")
    return ax_time, ax_mem


def plot_rounds(ax, T: int):
    """The Hillis–Steele scan over T steps: one row per round, an arrow from each
    position it reads to the position it updates; the span each position covers
    after the round is written in it."""
    rounds = reaches(T)
    for r in range(len(rounds) + 1):
        span = min(2 ** r, T)
        for t in range(T):
            covered = min(span, t + 1)
            ax.text(t, -r, f"{t - covered + 2}..{t + 1}", ha="center", va="center", fontsize=7,
                    bbox=dict(boxstyle="round", fc="C0" if covered == t + 1 else "white", alpha=0.25))
    for r, pairs in enumerate(rounds, start=1):
        for src, dst in pairs:
            ax.annotate("", xy=(dst, -r + 0.2), xytext=(src, -r + 0.8),
                        arrowprops=dict(arrowstyle="->", lw=0.7, color=f"C{r % 10}"))
    ax.set_xlim(-0.7, T - 0.3)
    ax.set_ylim(-len(rounds) - 0.6, 0.6)
    ax.set_yticks([-r for r in range(len(rounds) + 1)],
                  ["input"] + [f"round {r} (d = {2 ** (r - 1)})" for r in range(1, len(rounds) + 1)])
    ax.set_xticks(range(T), [str(t + 1) for t in range(T)])
    ax.set_xlabel("time step t (each box: the steps whose maps it has composed)")
    ax.set_title(f"Parallel scan, T = {T}: {scan_rounds(T)} rounds instead of {T - 1} sequential steps")
    return ax


def summary_text(timing: dict, memory: dict, name: str, T: int) -> str:
    """What the explorer prints under its figure for the chosen model and length."""
    s = seconds_at(timing, name, T)
    lines = [f"{name} at T = {T}: " + ("not timed (too slow)" if s is None else f"{1e3 * s:.1f} ms per step")]
    win = fastest(timing)[T]
    lines.append(f"fastest at T = {T}: {win}")
    row = min(memory["rows"], key=lambda r: abs(np.log(r["n"] / T)))
    lines.append(f"generating after {row['n']} tokens: minGRU keeps {row['rnn_bytes']} B, "
                 f"attention {row['attention_bytes']} B")
    return "\n".join(lines)


def draw_costs(fig, timing: dict, memory: dict, name: str, T: int, rounds_T: int) -> None:
    """The explorer's figure: the timing with ``name`` and T marked, the generation
    costs at context T, the scan's rounds for ``rounds_T``."""
    fig.clear()
    grid = fig.add_gridspec(2, 3, height_ratios=(1, 0.9))
    plot_timing(fig.add_subplot(grid[0, 0]), timing, name, T)
    plot_generation(fig.add_subplot(grid[0, 1]), fig.add_subplot(grid[0, 2]), memory, T)
    plot_rounds(fig.add_subplot(grid[1, :]), rounds_T)
    fig.tight_layout()


def static_figure(timing: dict, memory: dict, rounds_T: int = 8):
    """All of the explorer's panels at once, for where widgets do not render."""
    import matplotlib.pyplot as plt
    fig = plt.figure(figsize=(14, 8))
    draw_costs(fig, timing, memory, None, timing["lengths"][-1], rounds_T)
    return fig


def cost_explorer(timing: dict | None = None, memory: dict | None = None):
    """A model to follow, a length to read the curves at, and T for the scan's rounds."""
    import ipywidgets as widgets

    from rnncourse.plots import live_figure

    if timing is None or memory is None:
        from rnncourse.experiments.modern import load
        timing = timing or load("timing_cpu")
        memory = memory or load("memory")
    wide = {"description_width": "initial"}
    model = widgets.Dropdown(options=list(timing["seconds"]), value="minGRU scan", description="model", style=wide)
    length = widgets.SelectionSlider(options=timing["lengths"], value=timing["lengths"][-1],
                                     description="length T", continuous_update=False, style=wide)
    rounds = widgets.IntSlider(value=8, min=2, max=16, description="scan's T", continuous_update=False, style=wide)
    text = widgets.HTML()

    def draw(fig):
        draw_costs(fig, timing, memory, model.value, length.value, rounds.value)

    def describe(_change=None):
        text.value = "<pre>" + summary_text(timing, memory, model.value, length.value) + "</pre>"

    out = live_figure((model, length, rounds), draw, figsize=(14, 8))
    for control in (model, length):  # observed after the figure: the text never runs ahead of it
        control.observe(describe, names="value")
    describe()
    return widgets.VBox([widgets.HBox([model, length, rounds]), text, out])
