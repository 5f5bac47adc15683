"""Lesson 07: three readouts of one LSTM on the late-flip task, accuracy against
input length and against the flip's position.

The numbers come from ``data/masking/results.json`` (written by
``python -m rnncourse.experiments.masking``): for each readout and seed, which
examples of the fixed test set were classified correctly, next to each
example's length and flip position. The functions here bin them; the explorer
wraps them in ipywidgets (the x axis, which examples, a length range, a seed).
"""
from __future__ import annotations

import numpy as np

from rnncourse.experiments.masking import READOUT_NAMES, READOUTS
from rnncourse.plots import live_figure

AXES = {"length": "input length (tokens)",
        "flip": "flip position: fraction of the sequence before 'but'/'not'"}
EXAMPLES = ("all", "with a flip", "without a flip")
LENGTH_EDGES = np.arange(5, 106, 10)            # 5-14, 15-24, ..., 95-104
FLIP_EDGES = np.linspace(0.0, 1.0, 11)          # tenths of the sequence
MEAN = -1                                       # the seed control's "mean of seeds"


def seeds_of(results: dict) -> list:
    return sorted({run["seed"] for run in results["runs"].values()})


def correct(results: dict, readout: str) -> np.ndarray:
    """(seeds, n) array of 0/1: which test examples each seed's model got right."""
    runs = sorted((r for r in results["runs"].values() if r["readout"] == readout), key=lambda r: r["seed"])
    if not runs:
        raise KeyError(f"no runs of readout {readout!r} in the results")
    return np.array([[c == "1" for c in r["correct"]] for r in runs], dtype=float)


def _test(results: dict) -> dict:
    return {k: np.asarray(v) for k, v in results["test"].items()}


def select(results: dict, examples: str = "all", lengths: tuple = (5, 100)) -> np.ndarray:
    """Boolean (n,) mask of the test examples in ``examples`` with a length in ``lengths``."""
    if examples not in EXAMPLES:
        raise ValueError(f"examples must be one of {EXAMPLES}, got {examples!r}")
    t = _test(results)
    keep = (t["lengths"] >= lengths[0]) & (t["lengths"] <= lengths[1])
    if examples == "with a flip":
        keep &= t["flip_pos"] >= 0
    elif examples == "without a flip":
        keep &= t["flip_pos"] < 0
    return keep


def x_values(results: dict, axis: str) -> np.ndarray:
    """Each test example's length, or its flip position as a fraction of its length (NaN: no flip)."""
    t = _test(results)
    if axis == "length":
        return t["lengths"].astype(float)
    if axis == "flip":
        return np.where(t["flip_pos"] >= 0, t["flip_pos"] / t["lengths"], np.nan)
    raise ValueError(f"axis must be one of {tuple(AXES)}, got {axis!r}")


def accuracy_by(results: dict, readout: str, axis: str = "length", examples: str = "all",
                lengths: tuple = (5, 100)) -> tuple:
    """(bin centres, accuracy (seeds, bins), examples per bin) over the selected examples;
    an empty bin is NaN."""
    edges = LENGTH_EDGES if axis == "length" else FLIP_EDGES
    x = x_values(results, axis)
    keep = select(results, examples, lengths) & ~np.isnan(x)
    which = np.clip(np.digitize(x, edges) - 1, 0, len(edges) - 2)
    ok = correct(results, readout)
    acc = np.full((ok.shape[0], len(edges) - 1), np.nan)
    counts = np.zeros(len(edges) - 1, dtype=int)
    for k in range(len(edges) - 1):
        rows = keep & (which == k)
        counts[k] = rows.sum()
        if counts[k]:
            acc[:, k] = ok[:, rows].mean(axis=1)
    return (edges[:-1] + edges[1:]) / 2, acc, counts


def accuracy_table(results: dict, examples: str = "all", lengths: tuple = (5, 100)) -> dict:
    """readout -> (seeds,) accuracy over the selected examples."""
    keep = select(results, examples, lengths)
    return {r: correct(results, r)[:, keep].mean(axis=1) for r in READOUTS}


def plot_accuracy(ax, results: dict, axis: str = "length", examples: str = "all",
                  lengths: tuple = (5, 100), seed: int | None = None):
    """Accuracy against ``axis`` for the three readouts: the mean over seeds with the
    range of seeds shaded (or one seed's), chance dashed."""
    seeds = seeds_of(results)
    if axis == "flip" and examples == "without a flip":
        ax.text(0.5, 0.5, "reviews without a flip have no flip position:\nchoose 'all' or 'with a flip'",
                ha="center", va="center", transform=ax.transAxes)
    for j, readout in enumerate(READOUTS):
        centres, acc, counts = accuracy_by(results, readout, axis, examples, lengths)
        filled = np.where(counts > 0, acc, 0.0)  # empty bins (all seeds NaN) drawn as gaps below
        gap = np.where(counts > 0, 1.0, np.nan)
        ys = acc[seeds.index(seed)] if seed is not None else filled.mean(axis=0) * gap
        ax.plot(centres, ys, "-o", ms=4, color=f"C{j}", label=READOUT_NAMES[readout])
        if seed is None and len(seeds) > 1:
            ax.fill_between(centres, filled.min(axis=0) * gap, filled.max(axis=0) * gap, color=f"C{j}",
                            alpha=0.15, lw=0)
    ax.axhline(0.5, color="0.5", ls="--", lw=1, label="chance")
    ax.set_ylim(0.3, 1.02)
    ax.set_xlabel(AXES[axis])
    ax.set_ylabel("test accuracy")
    who = "mean over seeds, range shaded" if seed is None else f"seed {seed}"
    subset = examples if axis == "length" or examples == "without a flip" else "with a flip"
    ax.set_title(f"{subset}, lengths {lengths[0]}-{lengths[1]} ({who})", fontsize="medium")
    ax.legend(fontsize="small", loc="best")
    ax.grid(alpha=0.3)
    return ax


def draw_readouts(fig, results: dict, axis: str, examples: str, lengths: tuple, seed: int | None) -> None:
    """The explorer's figure: accuracy against the chosen axis, three readouts."""
    fig.clear()
    plot_accuracy(fig.subplots(), results, axis, examples, lengths, seed)
    fig.tight_layout()


def static_figure(results: dict):
    """Accuracy against length (all examples) and against the flip position (every
    example with a flip): the explorer's story where widgets don't render."""
    import matplotlib.pyplot as plt
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    plot_accuracy(ax1, results, "length")
    plot_accuracy(ax2, results, "flip", "with a flip")
    fig.suptitle("Three readouts of the same LSTM on the late-flip task", fontsize="medium")
    fig.tight_layout()
    return fig


def readout_explorer(results: dict | None = None):
    """Controls: the x axis, which examples, a length range and a seed; the figure redraws."""
    import ipywidgets as widgets

    if results is None:
        from rnncourse.experiments.masking import load_results
        results = load_results()
    wide = {"description_width": "initial"}
    axis = widgets.ToggleButtons(options=[("input length", "length"), ("flip position", "flip")],
                                 value="length", description="x axis", style=wide)
    examples = widgets.Dropdown(options=EXAMPLES, value="all", description="examples", style=wide)
    lengths = widgets.IntRangeSlider(value=(5, 100), min=5, max=100, step=5, description="lengths",
                                     continuous_update=False, style=wide)
    # -1 for the mean: a Dropdown whose value is None shows no selection at all
    seeds = [("mean of seeds", MEAN)] + [(f"seed {s}", s) for s in seeds_of(results)]
    seed = widgets.Dropdown(options=seeds, value=MEAN, description="seed", style=wide)

    def draw(fig):
        draw_readouts(fig, results, axis.value, examples.value, tuple(lengths.value),
                      None if seed.value == MEAN else seed.value)

    out = live_figure((axis, examples, lengths, seed), draw, figsize=(7.5, 4))
    return widgets.VBox([widgets.HBox([axis, examples]), widgets.HBox([lengths, seed]), out])
