"""Pictures of the recurrent cells, drawn with matplotlib: an unrolled RNN, an
LSTM cell, a GRU cell, and the four ways a recurrent model is used.

Each function returns a ``matplotlib.figure.Figure`` whose labels name every
gate and every path, so that a learner who is asked to sketch a cell and label
its gates has a reference to compare with. The drawings follow the equations of
:mod:`rnncourse.functional` (PyTorch's): the GRU's reset gate multiplies the
recurrent term *after* the matmul, and its update gate z keeps the old state
(``h_t = (1 - z) n + z h_{t-1}``).

Nothing here computes: these are diagrams, not plots of data. The texts drawn
are listed by :func:`labels`, which the tests use to check that every gate is named.
"""
from __future__ import annotations

import matplotlib.pyplot as plt
from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch

GATE = "#f6d7a7"    # gates (sigmoid)
CAND = "#b9d7ea"    # candidate / layer (tanh)
STATE = "#d5e8d4"   # states
OP = "white"        # pointwise operations


def _canvas(figsize, title):
    fig, ax = plt.subplots(figsize=figsize)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title)
    return fig, ax


def _box(ax, x, y, text, w=1.0, h=0.6, color=CAND, size=10):
    """A rounded box centred at (x, y) with ``text`` inside."""
    ax.add_patch(FancyBboxPatch((x - w / 2, y - h / 2), w, h, boxstyle="round,pad=0.05",
                                fc=color, ec="0.2", lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=size)


def _op(ax, x, y, text, r=0.22):
    """A pointwise operation (⊙, +, tanh, 1-) in a circle."""
    ax.add_patch(Circle((x, y), r, fc=OP, ec="0.2", lw=1.2))
    ax.text(x, y, text, ha="center", va="center", fontsize=10 if len(text) < 3 else 7)


def _arrow(ax, a, b, label=None, color="0.15", rad=0.0, offset=(0.0, 0.15), size=9, ls="-"):
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle="-|>", mutation_scale=12, color=color, lw=1.3,
                                 connectionstyle=f"arc3,rad={rad}", shrinkA=4, shrinkB=4, ls=ls))
    if label:
        ax.text((a[0] + b[0]) / 2 + offset[0], (a[1] + b[1]) / 2 + offset[1], label,
                ha="center", va="center", fontsize=size)


def _line(ax, points, color="0.15"):
    xs, ys = zip(*points)
    ax.plot(xs, ys, color=color, lw=1.3)


def unrolled_rnn(T: int = 4):
    """Left: the RNN as a loop. Right: the same RNN unrolled over T steps, every
    step the same function with the same weights W_ih, W_hh (parameter sharing)."""
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"T (the number of steps drawn) must be a positive int, got {T!r}")
    fig, ax = _canvas((2.2 * (T + 2), 3.6), "A vanilla RNN, folded (left) and unrolled over time (right)")
    # folded
    _box(ax, 0, 0, "RNN\ncell", color=CAND)
    _arrow(ax, (0, -1.3), (0, -0.35), "$x_t$", offset=(-0.3, -0.2))
    _arrow(ax, (0, 0.35), (0, 1.3), "$h_t$", offset=(-0.3, 0.2))
    _arrow(ax, (0.55, 0.1), (0.55, -0.1), None, rad=-2.5)
    ax.text(1.25, 0, "$W_{hh}$\n(delay)", ha="left", va="center", fontsize=9)
    ax.text(2.3, 0, "=", ha="center", va="center", fontsize=18)
    # unrolled
    x0 = 4.6
    ax.text(x0 - 1.5, 0, "$h_0$", ha="center", va="center", fontsize=11)
    for t in range(1, T + 1):
        x = x0 + 2.0 * (t - 1)
        _box(ax, x, 0, f"step {t}\n$\\tanh$", color=CAND, size=9)
        _arrow(ax, (x, -1.3), (x, -0.35), f"$x_{t}$", offset=(-0.35, -0.25))
        _arrow(ax, (x, -1.3), (x, -0.35), "$W_{ih}$", offset=(0.4, 0.05), size=8)
        _arrow(ax, (x, 0.35), (x, 1.3), f"$h_{t}$", offset=(-0.3, 0.25))
        prev = x - 2.0 + 0.55 if t > 1 else x0 - 1.3
        _arrow(ax, (prev, 0), (x - 0.55, 0), "$W_{hh}$", size=8, offset=(0, 0.18))
    ax.text(x0 + 2.0 * (T - 1) + 0.9, 0, "$\\cdots$", ha="left", va="center", fontsize=14)
    ax.text(x0 + (T - 1), -1.75, "the same weights $W_{ih}, W_{hh}, b_{ih}, b_{hh}$ at every step",
            ha="center", va="center", fontsize=9, style="italic")
    ax.set_xlim(-1.2, x0 + 2.0 * T)
    ax.set_ylim(-2.0, 1.7)
    return fig


def lstm_cell():
    """One LSTM step: the cell state c runs along the top, changed only by the
    forget gate's product and the input gate's addition; the output gate reads tanh(c_t)."""
    fig, ax = _canvas((9.5, 5.2), "An LSTM cell (PyTorch's gate order i, f, g, o)")
    top, mid, low = 2.6, 1.2, -0.4
    # the cell state path
    _arrow(ax, (-1.0, top), (1.28, top), "$c_{t-1}$", offset=(-1.2, 0.25))
    _op(ax, 1.5, top, "⊙")
    _arrow(ax, (1.72, top), (3.78, top))
    _op(ax, 4.0, top, "+")
    _arrow(ax, (4.22, top), (8.0, top), "$c_t$ (cell state)", offset=(1.1, 0.25))
    # the gates, reading [x_t, h_{t-1}]
    gates = [(1.5, "forget gate\n$f_t = \\sigma(\\cdot)$", GATE), (3.0, "input gate\n$i_t = \\sigma(\\cdot)$", GATE),
             (4.5, "candidate\n$g_t = \\tanh(\\cdot)$", CAND), (6.0, "output gate\n$o_t = \\sigma(\\cdot)$", GATE)]
    for x, text, color in gates:
        _box(ax, x, low, text, w=1.35, h=0.8, color=color, size=8)
    _line(ax, [(-1.0, -1.6), (6.0, -1.6)])
    for x, _, _ in gates:
        _arrow(ax, (x, -1.6), (x, low - 0.42))
    ax.text(-1.0, -1.95, "$h_{t-1}$ and $x_t$ feed every gate: $W_{i\\cdot} x_t + b_{i\\cdot} + W_{h\\cdot} h_{t-1} + b_{h\\cdot}$",
            ha="left", va="center", fontsize=8.5)
    _arrow(ax, (1.5, low + 0.42), (1.5, top - 0.24), "$f_t$", offset=(-0.25, 0))
    _op(ax, 3.75, mid, "⊙")
    _arrow(ax, (3.0, low + 0.42), (3.6, mid - 0.16), "$i_t$", offset=(-0.3, 0))
    _arrow(ax, (4.5, low + 0.42), (3.9, mid - 0.16), "$g_t$", offset=(0.3, 0))
    _arrow(ax, (3.75, mid + 0.22), (4.0, top - 0.24), "$i_t \\odot g_t$", offset=(-0.55, 0.1), size=8)
    # the output
    _op(ax, 6.0, top - 0.9, "tanh")
    _arrow(ax, (6.0, top), (6.0, top - 0.68))
    _op(ax, 7.0, mid, "⊙")
    _arrow(ax, (6.0, top - 1.12), (6.85, mid + 0.16))
    _arrow(ax, (6.0, low + 0.42), (6.82, mid - 0.16), "$o_t$", offset=(0.0, -0.2))
    _arrow(ax, (7.22, mid), (8.0, mid), "$h_t$ (output)", offset=(0.9, 0.2))
    ax.text(3.0, 3.25, "$c_t = f_t \\odot c_{t-1} + i_t \\odot g_t$,   $h_t = o_t \\odot \\tanh(c_t)$",
            ha="center", va="center", fontsize=10)
    ax.set_xlim(-1.2, 9.6)
    ax.set_ylim(-2.2, 3.5)
    return fig


def gru_cell():
    """One GRU step as PyTorch computes it (rows r, z, n): the reset gate scales the
    recurrent term after the matmul; the update gate mixes the old state and the candidate."""
    fig, ax = _canvas((9.5, 5.2), "A GRU cell (PyTorch's rows r, z, n)")
    top, mid, low = 2.6, 1.2, -0.4
    _arrow(ax, (-1.0, top), (3.78, top), "$h_{t-1}$", offset=(-1.6, 0.25))
    _op(ax, 4.0, top, "⊙")
    _arrow(ax, (4.22, top), (5.78, top), "$z_t \\odot h_{t-1}$", size=8)
    _op(ax, 6.0, top, "+")
    _arrow(ax, (6.22, top), (8.0, top), "$h_t$", offset=(0.8, 0.25))
    gates = [(1.0, "reset gate\n$r_t = \\sigma(\\cdot)$", GATE), (2.7, "update gate\n$z_t = \\sigma(\\cdot)$", GATE),
             (5.0, "candidate\n$n_t = \\tanh(W_{in} x_t + b_{in}$\n$+ r_t \\odot (W_{hn} h_{t-1} + b_{hn}))$", CAND)]
    for x, text, color in gates:
        _box(ax, x, low, text, w=1.35 if x < 4 else 2.3, h=0.8 if x < 4 else 1.0, color=color, size=8)
    _line(ax, [(-1.0, -1.6), (5.0, -1.6)])
    for x, _, _ in gates:
        _arrow(ax, (x, -1.6), (x, low - (0.42 if x < 4 else 0.52)))
    ax.text(-1.0, -1.95, "$h_{t-1}$ and $x_t$ feed every gate; the reset gate acts inside the candidate",
            ha="left", va="center", fontsize=8.5)
    _arrow(ax, (1.0, low + 0.42), (4.4, low + 0.2), "$r_t$", rad=-0.3, offset=(0.9, 0.55))
    _arrow(ax, (2.7, low + 0.42), (4.0, top - 0.24), "$z_t$", offset=(-0.3, 0.1))
    _op(ax, 2.7, mid + 0.2, "1-")
    _arrow(ax, (2.7, low + 0.42), (2.7, mid - 0.02))
    _op(ax, 6.0, mid, "⊙")
    _arrow(ax, (2.92, mid + 0.2), (5.78, mid + 0.05), "$1 - z_t$", offset=(0.0, 0.2))
    _arrow(ax, (5.0, low + 0.52), (5.88, mid - 0.19), "$n_t$", offset=(-0.2, 0.0))
    _arrow(ax, (6.0, mid + 0.22), (6.0, top - 0.22), "$(1 - z_t) \\odot n_t$", offset=(0.75, 0), size=8)
    ax.text(3.5, 3.25, "$h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}$:  $z_t \\approx 1$ keeps, "
            "$z_t \\approx 0$ writes", ha="center", va="center", fontsize=10)
    ax.set_xlim(-1.2, 9.6)
    ax.set_ylim(-2.2, 3.5)
    return fig


PATTERNS = {
    "many-to-one": ("classify a whole sequence (sentiment of a review)",
                    "one answer, read from the last state: everything must fit in $h_T$"),
    "many-to-many (tagging)": ("one label per step (part of speech)",
                               "step t sees only $x_1..x_t$, not what follows (lesson 06)"),
    "language model": ("predict $x_{t+1}$ from $x_1..x_t$; generate by feeding samples back",
                       "trained on true prefixes, it generates from its own: errors compound"),
    "encoder–decoder": ("read a sequence, then write another of a different length (translation)",
                        "the whole input squeezed into one vector: long inputs suffer (attention, lesson 10)"),
}


def _chain(ax, x0, n, y, ins, outs, color=CAND, w=0.7):
    """n cells left to right from x0; ins/outs: labels per cell (None for none)."""
    for k in range(n):
        x = x0 + 1.1 * k
        _box(ax, x, y, "", w=w, h=0.5, color=color)
        if ins[k]:
            _arrow(ax, (x, y - 0.95), (x, y - 0.27), ins[k], offset=(-0.28, -0.25), size=8)
        if outs[k]:
            _arrow(ax, (x, y + 0.27), (x, y + 0.95), outs[k], offset=(-0.28, 0.25), size=8)
        if k:
            _arrow(ax, (x - 1.1 + w / 2, y), (x - w / 2, y))


def usage_patterns():
    """The four ways a recurrent model is used, each with what it is for and its limitation."""
    import textwrap
    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    for ax, (name, (use, limit)) in zip(axes.flat, PATTERNS.items()):
        ax.set_aspect("equal")
        ax.axis("off")
        ax.set_title(name, fontsize=11)
        if name == "many-to-one":
            _chain(ax, 0, 4, 0, [f"$x_{k}$" for k in range(1, 5)], [None, None, None, "$y$"])
        elif name.startswith("many-to-many"):
            _chain(ax, 0, 4, 0, [f"$x_{k}$" for k in range(1, 5)], [f"$y_{k}$" for k in range(1, 5)])
        elif name == "language model":
            _chain(ax, 0, 4, 0, [f"$x_{k}$" for k in range(1, 5)], [f"$\\hat x_{k + 1}$" for k in range(1, 5)])
            for k in range(3):
                _arrow(ax, (1.1 * k + 0.15, 0.95), (1.1 * (k + 1) - 0.15, -0.95), None, color="C3", ls="--")
            ax.text(3.9, -0.6, "sample fed\nback (red)", ha="left", fontsize=8, color="C3")
        else:
            _chain(ax, 0, 3, 0, ["$x_1$", "$x_2$", "$x_3$"], [None, None, None], color=STATE)
            _chain(ax, 3.3, 2, 0, [None, None], ["$y_1$", "$y_2$"])
            _arrow(ax, (2.2 + 0.35, 0), (3.3 - 0.35, 0), "context", offset=(0, 0.25), size=8)
            ax.text(1.1, -1.35, "encoder", ha="center", fontsize=8)
            ax.text(3.85, -1.35, "decoder", ha="center", fontsize=8)
        ax.text(2.2, -1.75, textwrap.fill("use: " + use, 60), ha="center", va="top", fontsize=9)
        ax.text(2.2, -2.55, textwrap.fill("limit: " + limit, 60), ha="center", va="top", fontsize=9,
                color="0.3")
        ax.set_xlim(-0.8, 5.2)
        ax.set_ylim(-3.6, 1.6)
    fig.suptitle("Four ways to use a recurrent model (boxes: one RNN step; arrows right: the state)")
    fig.tight_layout()
    return fig


def labels(fig) -> list[str]:
    """Every text drawn in ``fig`` (titles included), for tests and for alt text."""
    out = [t.get_text() for t in fig.texts]
    for ax in fig.axes:
        out.append(ax.get_title())
        out += [t.get_text() for t in ax.texts]
    return [t for t in out if t]
