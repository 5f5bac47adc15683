"""Lesson 05: RNN vs LSTM vs GRU on the first-symbol recall task, a look inside
a trained GRU's gates, and the cost of sequential steps.

The comparison's numbers come from ``data/longrange/results.json`` (written by
``python -m rnncourse.experiments.longrange``): accuracy on fresh sequences
every 50 training steps, for each model, length and seed. The functions here
turn them into tables and figures; ``comparison_explorer`` wraps them in
ipywidgets (a slider over the training step, one over the length T).
"""
from __future__ import annotations

import time

import numpy as np
import torch

from rnncourse.functional import gru_step, input_projection, rnn_step
from rnncourse.kinds import KINDS, gate_rows
from rnncourse.plots import plot_curves, live_figure


# ----------------------------------------------------------------------------
# the saved comparison

def lengths_of(results: dict) -> list:
    return sorted({run["T"] for run in results["runs"].values()})


def steps_of(results: dict) -> list:
    return next(iter(results["runs"].values()))["steps"]


def accuracy_at(results: dict, kind: str, T: int, step: int | None = None) -> np.ndarray:
    """Accuracy of every seed's ``kind`` model at length T after ``step`` training
    steps (the last evaluation when None), as a (seeds,) array."""
    runs = [r for r in results["runs"].values() if r["kind"] == kind and r["T"] == T]
    if not runs:
        raise KeyError(f"no run of {kind} at T={T} in the results")
    i = -1 if step is None else runs[0]["steps"].index(step)
    return np.array([r["accuracy"][i] for r in runs])


def accuracy_table(results: dict, step: int | None = None) -> dict:
    """kind -> (lengths,) mean accuracy over seeds after ``step`` steps."""
    return {k: np.array([accuracy_at(results, k, T, step).mean() for T in lengths_of(results)])
            for k in KINDS}


def longest_solved(results: dict, threshold: float = 0.9, step: int | None = None) -> dict:
    """kind -> the longest T at which every seed reached ``threshold`` accuracy (0 if none)."""
    out = {}
    for k in KINDS:
        solved = [T for T in lengths_of(results) if accuracy_at(results, k, T, step).min() >= threshold]
        out[k] = max(solved, default=0)
    return out


def _chance(results: dict) -> float:
    return 1.0 / results["config"]["num_symbols"]


def plot_accuracy_vs_length(ax, results: dict, step: int | None = None):
    """Mean accuracy against T (log axis) per model, each seed as a dot, chance dashed."""
    Ts = lengths_of(results)
    for j, k in enumerate(KINDS):
        ax.plot(Ts, accuracy_table(results, step)[k], "-o", color=f"C{j}", label=k)
        for T in Ts:
            acc = accuracy_at(results, k, T, step)
            ax.plot([T] * len(acc), acc, ".", color=f"C{j}", alpha=0.4, ms=5)
    ax.axhline(_chance(results), color="0.5", ls="--", lw=1, label="chance")
    ax.set_xscale("log")
    ax.set_xticks(Ts, [str(T) for T in Ts])
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("sequence length T (steps, log scale)")
    ax.set_ylabel("accuracy on fresh sequences")
    shown = steps_of(results)[-1] if step is None else step
    ax.set_title(f"Recall the first symbol: after {shown} training steps")
    ax.legend(fontsize="small", loc="lower left")
    ax.grid(alpha=0.3)
    return ax


def plot_learning_curves(ax, results: dict, T: int):
    """Mean accuracy over seeds against the training step, one line per model, at length T."""
    steps = np.array(steps_of(results))
    curves = {k: np.mean([r["accuracy"] for r in results["runs"].values()
                          if r["kind"] == k and r["T"] == T], axis=0) for k in KINDS}
    plot_curves(ax, steps, curves, "training step", "accuracy (mean over seeds)",
                f"Learning curves at T = {T}")
    ax.axhline(_chance(results), color="0.5", ls="--", lw=1)
    ax.set_ylim(0, 1.05)
    return ax


def draw_comparison(fig, results: dict, step: int, T: int) -> None:
    """The explorer's two panels: accuracy against length after ``step`` steps,
    and the learning curves at length ``T`` with ``step`` marked."""
    fig.clear()
    ax1, ax2 = fig.subplots(1, 2)
    plot_accuracy_vs_length(ax1, results, step)
    ax1.axvline(T, color="k", lw=0.8, ls=":")
    plot_learning_curves(ax2, results, T)
    ax2.axvline(step, color="k", lw=0.8, ls=":")
    fig.tight_layout()


def static_figure(results: dict, steps=(100, 250, None)):
    """Accuracy against length at three points of training: the explorer's story
    where widgets don't render."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(steps), figsize=(4.4 * len(steps), 3.6), sharey=True)
    for ax, step in zip(np.atleast_1d(axes), steps):
        plot_accuracy_vs_length(ax, results, step)
    fig.tight_layout()
    return fig


def comparison_explorer(results: dict | None = None):
    """A slider over the training step and one over the length T; the figure redraws."""
    import ipywidgets as widgets

    if results is None:
        from rnncourse.experiments.longrange import load_results
        results = load_results()
    steps, Ts = steps_of(results), lengths_of(results)
    wide = {"description_width": "initial"}  # room for the labels
    step = widgets.SelectionSlider(options=steps, value=steps[-1], description="training step",
                                   continuous_update=False, style=wide)
    length = widgets.SelectionSlider(options=Ts, value=Ts[len(Ts) // 2], description="length T",
                                     continuous_update=False, style=wide)

    def draw(fig):
        draw_comparison(fig, results, step.value, length.value)

    out = live_figure((step, length), draw, figsize=(11, 3.8))
    return widgets.VBox([widgets.HBox([step, length]), out])


# ----------------------------------------------------------------------------
# inside a trained GRU

def gru_gates(x: torch.Tensor, weight_ih, weight_hh, bias_ih, bias_hh) -> dict:
    """Run one GRU layer (``rnncourse.functional.gru_step``, PyTorch's equations) over
    x (B, T, I) from zeros and return its states and gates, each (B, T, H): {"h", "r", "z", "n"}.

    ``gru_step`` returns only the new state, so the gates are read from the same
    projections it uses; the state is ``gru_step``'s, and ``h = (1 - z) n + z h_prev``
    is asserted at every step, so a change to the step cannot leave the gates stale.
    """
    B, T, _ = x.shape
    H = weight_hh.shape[1]
    r_rows, z_rows, n_rows = (gate_rows("GRU", g, H) for g in "rzn")
    h = x.new_zeros(B, H)
    keep = {k: [] for k in "hrzn"}
    with torch.no_grad():
        gx_all = input_projection(x.reshape(B * T, -1), weight_ih, bias_ih).view(B, T, 3 * H)  # (B, T, 3H)
        for t in range(T):
            gx = gx_all[:, t]  # (B, 3H)
            gh = torch.addmm(bias_hh, h, weight_hh.T)  # (B, 3H)
            r = torch.sigmoid(gx[:, r_rows] + gh[:, r_rows])
            z = torch.sigmoid(gx[:, z_rows] + gh[:, z_rows])
            n = torch.tanh(gx[:, n_rows] + r * gh[:, n_rows])
            h_new = gru_step(gx, h, weight_hh, bias_hh)  # (B, H)
            torch.testing.assert_close(h_new, (1 - z) * n + z * h)
            h = h_new
            for k, v in zip("hrzn", (h, r, z, n)):
                keep[k].append(v)
    return {k: torch.stack(v, dim=1) for k, v in keep.items()}


# ----------------------------------------------------------------------------
# the cost of sequential steps

def _timed(fn, repeats: int, device) -> float:
    """Median wall time of ``repeats`` calls, in seconds (the GPU synchronised), after
    one warm-up call. The median, not the best or the mean: on a shared machine a
    single lucky or unlucky call should not decide the comparison."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def sequential_cost(T: int, batch_size: int = 16, hidden_size: int = 32, device="cpu",
                    repeats: int = 15, seed: int = 0, threads: int | None = 1) -> dict:
    """Time the same arithmetic two ways: T recurrent steps, each
    tanh(x_t + h W^T) with a (B, H) @ (H, H) matmul that must wait for the previous
    step, and one feed-forward layer tanh(X + X W^T) over all T*B rows at once.

    Both sides do the same floating-point work: 2*T*B*H*H for the products, T*B*H
    additions and T*B*H tanh. On the CPU the timing runs on ``threads`` torch threads
    (one by default, so that other programs on a shared machine cannot flip the
    result) and reports the median of ``repeats`` calls.

    Returns {"sequential_s", "parallel_s", "ratio", "flops_sequential", "flops_parallel"}
    (flops counting the products and the additions; the tanh count is the same).
    """
    from rnncourse.experiments.settings import torch_threads
    gen = torch.Generator().manual_seed(seed)
    W = (torch.randn(hidden_size, hidden_size, generator=gen) / hidden_size ** 0.5).to(device)
    x = torch.randn(T, batch_size, hidden_size, generator=gen).to(device)  # (T, B, H)
    flat = x.reshape(T * batch_size, hidden_size)  # (T*B, H)

    def recurrent():
        h = torch.zeros(batch_size, hidden_size, device=device)
        for t in range(T):  # step t needs h from step t-1: no way to run them at once
            h = rnn_step(x[t], h, W)  # (B, H): tanh(x_t + h W^T)
        return h

    def feed_forward():
        return torch.tanh(torch.addmm(flat, flat, W.T))  # (T*B, H): tanh(X + X W^T), one call

    cpu = torch.device(device).type == "cpu"
    with torch_threads(threads if cpu else None):
        seq = _timed(recurrent, repeats, device)
        par = _timed(feed_forward, repeats, device)
    per_side = T * (2 * batch_size * hidden_size ** 2 + batch_size * hidden_size)
    return {"sequential_s": seq, "parallel_s": par, "ratio": seq / par,
            "flops_sequential": per_side, "flops_parallel": per_side}


GATE_BLOCKS = {"RNN": 1, "GRU": 3, "LSTM": 4}  # G: row blocks of weight_ih / weight_hh


def step_flops(kind: str, batch_size: int, input_size: int, hidden_size: int) -> int:
    """Multiply-add FLOPs of one step's two matmuls, 2 * B * G*H * (I + H) (the
    elementwise gate arithmetic, O(B*H), is left out)."""
    return 2 * batch_size * GATE_BLOCKS[kind] * hidden_size * (input_size + hidden_size)


def step_cost(kind: str, hidden_size: int = 256, batch_size: int = 32, T: int = 50,
              onednn: bool = True, repeats: int = 9, threads: int = 1, seed: int = 0) -> float:
    """Seconds per time step of ``torch.nn.<kind>(H, H)``'s forward over (B, T, H) on the
    CPU, on ``threads`` threads, median of ``repeats``. ``onednn=False`` switches off
    the oneDNN (mkldnn) kernels that PyTorch uses for some layers on the CPU (its LSTM
    among them), leaving the plain kernels every kind shares."""
    import warnings

    from rnncourse.experiments.settings import torch_threads
    torch.manual_seed(seed)
    layer = getattr(torch.nn, kind)(hidden_size, hidden_size, batch_first=True)
    x = torch.randn(batch_size, T, hidden_size)  # (B, T, H)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the flags context warns about Intel GPUs
        with torch.backends.mkldnn.flags(enabled=onednn), torch_threads(threads), torch.no_grad():
            return _timed(lambda: layer(x), repeats, "cpu") / T
