"""Exploration and experiment for lesson 04: what the LSTM's gates do, and how
far back a gradient reaches through the cell state.

The logic is plain functions (tested without a browser); ``gate_explorer``
wraps them in ipywidgets. One cell unit is enough to see the story: the forget
gate f decides how much of c_{t-1} the cell keeps, the input gate i how much of
the candidate g it writes, the output gate o how much of tanh(c_t) it exposes
as h_t. Held constant over many steps, the update c_t = f c_{t-1} + i g settles
at i g / (1 - f): close to f = 1 the cell remembers, close to f = 0 it forgets
within a step or two.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from rnncourse.functional import input_projection, lstm_step, rnn_step
from rnncourse.kinds import gate_rows, kind_of
from rnncourse.plots import plot_curves, live_figure

PARTS = ("c_prev", "kept", "written", "c", "h")
_LABELS = ("$c_{t-1}$", "kept\n$f c_{t-1}$", "written\n$i g$", "$c_t$", "exposed\n$h_t = o\\,\\tanh c_t$")


# ----------------------------------------------------------------------------
# one unit, gates given

def cell_update(c_prev: float, i: float, f: float, g: float, o: float) -> dict:
    """One LSTM update of a single unit with the gate values given directly
    (i, f, o in [0, 1], g in [-1, 1]): what it keeps, writes and exposes."""
    kept, written = f * c_prev, i * g
    c = kept + written
    return {"c_prev": c_prev, "kept": kept, "written": written, "c": c, "h": o * math.tanh(c)}


def constant_gate_run(c0: float, i: float, f: float, g: float, o: float, T: int = 20) -> dict:
    """c_t and h_t for t = 0..T with the same gates at every step, as (T+1,) arrays
    (h_0 is o tanh c_0), and the fixed point i g / (1 - f) (inf-free: None at f = 1)."""
    c = np.empty(T + 1)
    c[0] = c0
    for t in range(1, T + 1):
        c[t] = f * c[t - 1] + i * g
    return {"c": c, "h": o * np.tanh(c), "fixed_point": None if f >= 1 else i * g / (1 - f)}


def plot_cell_bars(ax, parts: dict, title: str):
    """The five quantities of :func:`cell_update` as bars."""
    values = [parts[k] for k in PARTS]
    colors = ["0.6", "C0", "C1", "C2", "C3"]
    ax.bar(range(len(PARTS)), values, color=colors)
    for x, v in enumerate(values):
        ax.text(x, v + (0.08 if v >= 0 else -0.08), f"{v:.2f}", ha="center",
                va="bottom" if v >= 0 else "top", fontsize="small")
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(range(len(PARTS)), _LABELS, fontsize="small")
    ax.set_ylim(-4.2, 4.2)
    ax.set_ylabel("value (one unit)")
    ax.set_title(title)
    return ax


def plot_cell_run(ax, run: dict, title: str):
    """c_t and h_t over the steps of :func:`constant_gate_run`."""
    t = np.arange(len(run["c"]))
    ax.plot(t, run["c"], "-o", ms=3, color="C2", label="cell state $c_t$")
    ax.plot(t, run["h"], "-s", ms=3, color="C3", label="output $h_t$")
    if run["fixed_point"] is not None:
        ax.axhline(run["fixed_point"], color="C2", ls="--", lw=0.8, label="$ig/(1-f)$")
    ax.set_ylim(-4.2, 4.2)
    ax.set_xlabel("time step $t$ (same gates every step)")
    ax.set_ylabel("value (one unit)")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="lower right")
    ax.grid(alpha=0.3)
    return ax


def draw_gates(fig, c_prev: float, i: float, f: float, g: float, o: float, T: int = 20) -> None:
    """The explorer's two panels: one update as bars, and the same gates held for T steps."""
    fig.clear()
    ax1, ax2 = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1, 1.2]})
    plot_cell_bars(ax1, cell_update(c_prev, i, f, g, o),
                   f"One update: f={f:.2f}, i={i:.2f}, g={g:.2f}, o={o:.2f}")
    plot_cell_run(ax2, constant_gate_run(c_prev, i, f, g, o, T), f"Held for {T} steps from $c_0$ = {c_prev:.2f}")
    fig.tight_layout()


SCENARIOS = {  # name -> (c_prev, i, f, g, o)
    "remember: f=1, i=0": (2.0, 0.0, 1.0, 0.8, 1.0),
    "overwrite: f=0, i=1": (2.0, 1.0, 0.0, -0.8, 1.0),
    "accumulate: f=1, i=1": (2.0, 1.0, 1.0, 0.3, 1.0),
    "keep, but hide: o=0": (2.0, 0.0, 1.0, 0.8, 0.0),
}


def static_figure(scenarios: dict = SCENARIOS, T: int = 6):
    """One column per scenario: the update as bars (top) and the gates held for T steps (bottom)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(2, len(scenarios), figsize=(3.6 * len(scenarios), 6.4))
    for k, (name, (c_prev, i, f, g, o)) in enumerate(scenarios.items()):
        plot_cell_bars(axes[0, k], cell_update(c_prev, i, f, g, o), name)
        plot_cell_run(axes[1, k], constant_gate_run(c_prev, i, f, g, o, T), name)
    fig.tight_layout()
    return fig


def gate_explorer(T: int = 20):
    """Sliders for c_{t-1} and the four gate values; the figure redraws on change."""
    import ipywidgets as widgets

    def slider(desc, value, lo, hi):
        return widgets.FloatSlider(value=value, min=lo, max=hi, step=0.05, description=desc,
                                   continuous_update=False)

    # Defaults where every slider matters (i > 0, so g counts; o > 0, so h shows).
    sliders = [slider("c_prev", 1.5, -3.0, 3.0), slider("forget f", 0.8, 0.0, 1.0),
               slider("input i", 0.5, 0.0, 1.0), slider("candidate g", 0.6, -1.0, 1.0),
               slider("output o", 0.7, 0.0, 1.0)]

    def draw(fig):
        c_prev, f, i, g, o = (s.value for s in sliders)
        draw_gates(fig, c_prev, i, f, g, o, T)

    out = live_figure(sliders, draw, figsize=(10.5, 3.8))
    return widgets.VBox([widgets.HBox(sliders[:3]), widgets.HBox(sliders[3:]), out])


# ----------------------------------------------------------------------------
# gradient flow: vanilla RNN vs LSTM on the same sequence

def _default_init(gen: torch.Generator, *shape: int, hidden_size: int) -> torch.Tensor:
    # The distribution of PyTorch's default for nn.RNN / nn.LSTM: U(-1/sqrt(H), 1/sqrt(H)).
    bound = 1.0 / math.sqrt(hidden_size)
    return (torch.rand(*shape, generator=gen, dtype=torch.float64) * 2 - 1) * bound


def state_gradient_norms(kind: str, T: int = 100, input_size: int = 8, hidden_size: int = 64,
                         forget_bias: float | None = None, seed: int = 0, data_seed: int = 123) -> dict:
    """How far back the gradient of one output reaches, in float64.

    Runs one sequence x (T, I) of standard-normal inputs (``data_seed``) through
    an RNN (``kind="RNN"``) or an LSTM (``"LSTM"``) with PyTorch's default initialisation
    (``seed``), takes L = u . h_T for a fixed random u, and returns the norms
    ||dL/dh_t|| (and for the LSTM ||dL/dc_t||) for t = 0..T as (T+1,) arrays.
    ``forget_bias`` sets the forget gate's total bias (b_ih + b_hh on the rows of
    ``rnncourse.kinds.gate_rows("LSTM", "f", H)``, as ``rnncourse.init.set_forget_bias`` does).
    Also returns the mean forget-gate value and, per t, the mean over units of
    the product of forget gates f_{t+1} ... f_T ("forget_product"); the mean gate
    raised to T - t ("mean_gate_power"); and ||(f_{t+1} ... f_T) * dL/dc_T||, the
    gradient the direct cell path alone would deliver to c_t ("direct"), to set
    against the measured ||dL/dc_t||, which adds the paths through h.
    """
    kind = kind_of(kind)
    if kind not in ("RNN", "LSTM"):
        raise ValueError(f"kind must be 'RNN' or 'LSTM', got {kind!r}")
    H, G = hidden_size, hidden_size * (4 if kind == "LSTM" else 1)
    gen = torch.Generator().manual_seed(seed)
    W_ih, W_hh = _default_init(gen, G, input_size, hidden_size=H), _default_init(gen, G, H, hidden_size=H)
    b = _default_init(gen, G, hidden_size=H) + _default_init(gen, G, hidden_size=H)  # b_ih + b_hh
    f_rows = gate_rows("LSTM", "f", H) if kind == "LSTM" else None
    if forget_bias is not None:
        if kind != "LSTM":
            raise ValueError("forget_bias is for the LSTM")
        b[f_rows] = forget_bias
    data = torch.Generator().manual_seed(data_seed)
    x = torch.randn(1, T, input_size, generator=data, dtype=torch.float64)  # (B=1, T, I)
    u = torch.randn(H, generator=data, dtype=torch.float64)

    h = torch.zeros(1, H, dtype=torch.float64, requires_grad=True)
    c = torch.zeros(1, H, dtype=torch.float64, requires_grad=True)
    hs, cs, forget = [h], [c], []
    gx = input_projection(x[0], W_ih, b)  # (T, G): input projections, outside the loop
    for t in range(T):
        if kind == "RNN":
            h = rnn_step(gx[t:t + 1], h, W_hh)
        else:
            # the forget gate's value, which lstm_step does not return: its pre-activation's rows
            forget.append(torch.sigmoid((gx[t:t + 1] + h @ W_hh.T)[:, f_rows]).detach()[0])  # (H,)
            h, c = lstm_step(gx[t:t + 1], h, c, W_hh)
            c.retain_grad()
            cs.append(c)
        h.retain_grad()
        hs.append(h)
    (h[0] @ u).backward()
    out = {"h": np.array([s.grad.norm().item() for s in hs])}
    if kind == "LSTM":
        out["c"] = np.array([s.grad.norm().item() for s in cs])
        f = torch.stack(forget)  # (T, H), f_1 .. f_T
        tail = torch.flip(torch.cumprod(torch.flip(f, [0]), 0), [0])  # row t-1: f_t ... f_T
        prod = torch.cat([tail, torch.ones(1, H, dtype=torch.float64)])  # row t: f_{t+1} ... f_T
        out["forget_mean"] = f.mean().item()
        out["forget_product"] = prod.mean(dim=1).numpy()
        # the direct cell path alone: dL/dc_T carried back by the forget gates only,
        # dL/dc_t = (f_{t+1} ... f_T) * dL/dc_T elementwise, without the paths through h
        out["direct"] = (prod * cs[-1].grad[0]).norm(dim=1).numpy()  # (T+1,)
        # every unit's gate at the mean value: what "f is about sigma(b)" predicts
        out["mean_gate_power"] = f.mean().item() ** np.arange(T, -1, -1, dtype=float)
    return out


def gradient_figure(runs: dict):
    """Gradient norms against the time step, log scale: ``runs`` maps a legend
    label to a (T+1,) array from :func:`state_gradient_norms`."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 4))
    T = len(next(iter(runs.values()))) - 1
    plot_curves(ax, np.arange(T + 1), runs, "time step $t$",
                "gradient norm $\\|\\partial L / \\partial s_t\\|$ (log scale)",
                f"How far back the gradient of $L = u \\cdot h_{{{T}}}$ reaches", logy=True,
                styles=("-", "-", "-", "--", ":", "-."))
    fig.tight_layout()
    return fig, ax


def lstm_gates(x: torch.Tensor, weight_ih, weight_hh, bias_ih, bias_hh) -> dict:
    """Run one LSTM layer (``rnncourse.functional.lstm_step``, PyTorch's equations) over
    x (B, T, I) from zeros and return its gates and states, each (B, T, H):
    {"i", "f", "g", "o", "c", "h"}. The gates are read from the same pre-activations
    ``lstm_step`` uses, and its (h, c) is checked against them at every step."""
    B, T, _ = x.shape
    H = weight_hh.shape[1]
    rows = {k: gate_rows("LSTM", k, H) for k in "ifgo"}
    h, c = x.new_zeros(B, H), x.new_zeros(B, H)
    keep = {k: [] for k in "ifgoch"}
    with torch.no_grad():
        gx_all = input_projection(x.reshape(B * T, -1), weight_ih, bias_ih + bias_hh).view(B, T, 4 * H)
        for t in range(T):
            pre = gx_all[:, t] + h @ weight_hh.T  # (B, 4H)
            gates = {k: (torch.tanh if k == "g" else torch.sigmoid)(pre[:, rows[k]]) for k in "ifgo"}
            h_new, c_new = lstm_step(gx_all[:, t], h, c, weight_hh)
            torch.testing.assert_close(c_new, gates["f"] * c + gates["i"] * gates["g"])
            h, c = h_new, c_new
            for k in "ifgo":
                keep[k].append(gates[k])
            keep["c"].append(c)
            keep["h"].append(h)
    return {k: torch.stack(v, dim=1) for k, v in keep.items()}


def forget_gate_profile(lstm: torch.nn.Module, x: torch.Tensor) -> dict:
    """Inside a trained one-layer ``torch.nn.LSTM``: run it over x (B, T, I) with
    :func:`lstm_gates` and return {"f_unit": (H,) each unit's median forget gate over
    sequences and steps, "keeper": the unit with the largest, "c_keeper": (B, T) its cell,
    "max_error": the largest difference from the module's own outputs}. Only the summary
    leaves this function, not the states: lesson 04's learners write those themselves."""
    g = lstm_gates(x, lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0, lstm.bias_hh_l0)
    with torch.no_grad():
        out, _ = lstm(x)  # (B, T, H)
    f_unit = g["f"].flatten(0, 1).median(dim=0).values  # (H,)
    keeper = int(f_unit.argmax())
    return {"f_unit": f_unit, "keeper": keeper, "c_keeper": g["c"][:, :, keeper],
            "max_error": (out - g["h"]).abs().max().item()}
