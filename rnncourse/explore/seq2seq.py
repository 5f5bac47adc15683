"""Exploration for lesson 09: beam search on a tiny next-token probability table.

The "model" is a table: for every prefix of at most ``max_len - 1`` tokens it
gives p(next token | prefix) over three tokens, ``a``, ``b`` and EOS. The whole
tree of outputs is small enough to draw, so every hypothesis the search keeps,
prunes or finishes can be seen, and its score checked by hand.

:func:`trace_beam` runs the lesson's beam search (the shrinking beam of
:func:`rnncourse.decoding.beam_search`; the tests check they agree) and
records, step by step, which hypotheses were kept, pruned and finished.
:func:`draw_tree` draws it; :func:`beam_explorer` adds a beam-width slider and a
length-normalisation slider. Greedy decoding is beam width 1.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

TOKENS = ("a", "b", "E")  # E is EOS
EOS = "E"

# p(next | prefix): tuned so that greedy and beam search part ways. Greedy takes
# "a" (0.40) first, but the outputs that start with "b" are more probable; and
# the one-token output "E" (0.25) beats them all unless the score is normalised
# by length, so a wider beam without normalisation returns the shortest answer.
TABLE = {
    "": (0.40, 0.35, 0.25),
    "a": (0.36, 0.30, 0.34),
    "b": (0.90, 0.05, 0.05),
    "aa": (0.40, 0.30, 0.30),
    "ab": (0.30, 0.40, 0.30),
    "ba": (0.30, 0.10, 0.60),
    "bb": (0.40, 0.30, 0.30),
}
MAX_LEN = 3


def log_prob(seq: str, table: dict = TABLE) -> float:
    """log p of an output (a string of tokens): the sum of log p(next | prefix)."""
    return sum(math.log(table[seq[:t]][TOKENS.index(tok)]) for t, tok in enumerate(seq))


def score(seq: str, alpha: float, table: dict = TABLE) -> float:
    """The normalised score log p / n**alpha, n counting every token (EOS included)."""
    return log_prob(seq, table) / len(seq) ** alpha


def outputs(max_len: int = MAX_LEN) -> list:
    """Every complete output: ended by EOS, or max_len tokens without it."""
    out = []
    for n in range(1, max_len + 1):
        for seq in itertools.product(TOKENS, repeat=n):
            s = "".join(seq)
            if EOS in s[:-1] or (n < max_len and s[-1] != EOS):
                continue
            out.append(s)
    return out


@dataclass
class Trace:
    """What the search did: per step, the candidates (prefix -> log p) and which
    of them were kept live, finished or pruned; then the answer."""
    steps: list = field(default_factory=list)  # [{"candidates", "live", "finished", "pruned", "width"}]
    finished: dict = field(default_factory=dict)  # output -> log p
    answer: str = ""
    answer_score: float = float("-inf")
    pool: dict = field(default_factory=dict)  # every candidate answer -> normalised score


def trace_beam(beam_width: int, alpha: float, table: dict = TABLE, max_len: int = MAX_LEN) -> Trace:
    """The lesson's beam search on ``table``, recorded (see the module docstring)."""
    if beam_width < 1:
        raise ValueError(f"beam_width must be at least 1, got {beam_width}")
    tr = Trace()
    live, k = {"": 0.0}, beam_width
    for _ in range(max_len):
        cands = {p + tok: lp + math.log(table[p][i]) for p, lp in live.items()
                 for i, tok in enumerate(TOKENS)}
        ranked = sorted(cands, key=lambda s: -cands[s])
        kept = ranked[:k]
        done = [s for s in kept if s.endswith(EOS)]
        live = {s: cands[s] for s in kept if not s.endswith(EOS)}
        tr.steps.append({"candidates": cands, "live": list(live), "finished": done,
                         "pruned": ranked[k:], "width": k})
        for s in done:
            tr.finished[s] = cands[s]
        k -= len(done)
        if not live:
            break
    tr.pool = {s: lp / len(s) ** alpha for s, lp in {**tr.finished, **live}.items()}
    tr.answer = max(tr.pool, key=tr.pool.get)
    tr.answer_score = tr.pool[tr.answer]
    return tr


def best_output(alpha: float, table: dict = TABLE, max_len: int = MAX_LEN) -> tuple:
    """(output, normalised score) of exhaustive search."""
    scored = {s: score(s, alpha, table) for s in outputs(max_len)}
    best = max(scored, key=scored.get)
    return best, scored[best]


def _layout(max_len: int) -> dict:
    """y position of every prefix: leaves spread evenly, parents centred on their children."""
    pos, leaves = {}, []

    def walk(prefix: str):
        if len(prefix) == max_len or prefix.endswith(EOS):
            pos[prefix] = float(len(leaves))
            leaves.append(prefix)
            return
        for tok in TOKENS:
            walk(prefix + tok)
        kids = [pos[prefix + t] for t in TOKENS]
        pos[prefix] = sum(kids) / len(kids)

    walk("")
    return pos


def draw_tree(ax, beam_width: int, alpha: float, table: dict = TABLE, max_len: int = MAX_LEN) -> Trace:
    """The tree of outputs with the search's decisions: kept (blue), finished (green),
    pruned (grey), never reached (light); the answer in red, greedy's path dashed."""
    tr = trace_beam(beam_width, alpha, table, max_len)
    greedy = trace_beam(1, alpha, table, max_len).answer
    pos = _layout(max_len)
    status = {"": "live"}
    for st in tr.steps:
        for s in st["live"]:
            status[s] = "live"
        for s in st["finished"]:
            status[s] = "finished"
        for s in st["pruned"]:
            status[s] = "pruned"
    colours = {"live": "C0", "finished": "C2", "pruned": "0.55", None: "0.85"}
    for prefix, y in pos.items():
        if not prefix:
            continue
        parent = prefix[:-1]
        p = table[parent][TOKENS.index(prefix[-1])]
        st = status.get(prefix)
        on_answer = tr.answer.startswith(prefix)
        on_greedy = greedy.startswith(prefix)
        ax.plot([len(parent), len(prefix)], [pos[parent], y], color="C3" if on_answer else colours[st],
                lw=3 if on_answer else 1.2, zorder=1)
        if on_greedy:
            ax.plot([len(parent), len(prefix)], [pos[parent], y], color="C1", lw=1.5, ls="--", zorder=2)
        ax.scatter([len(prefix)], [y], s=60, color=colours[st], zorder=3, edgecolor="k", lw=0.4)
        label = f"{prefix[-1]} ({p:.2f})"
        if prefix.endswith(EOS) or len(prefix) == max_len:
            label += f"  {prefix}: log p = {log_prob(prefix, table):.2f}"
            if prefix in tr.pool:
                label += f", score {tr.pool[prefix]:.2f}"
        ax.text(len(prefix) + 0.05, y, label, fontsize=7, va="center")
    ax.scatter([0], [pos[""]], s=60, color="k", zorder=3)
    ax.text(-0.05, pos[""], "BOS", ha="right", va="center", fontsize=8)
    ax.set_xlim(-0.4, max_len + 1.6)
    ax.set_xticks(range(max_len + 1), ["start"] + [f"step {t}" for t in range(1, max_len + 1)])
    ax.set_yticks([])
    ax.invert_yaxis()
    best, best_score = best_output(alpha, table, max_len)
    ax.set_title(f"beam width {beam_width}, alpha {alpha:.2f}: answer {tr.answer} "
                 f"(score {tr.answer_score:.2f})\ngreedy {greedy}; exhaustive best {best} "
                 f"({best_score:.2f})", fontsize=9)
    from matplotlib.lines import Line2D
    ax.legend(handles=[Line2D([], [], color="C0", marker="o", label="kept (live)"),
                       Line2D([], [], color="C2", marker="o", label="finished (kept to the end)"),
                       Line2D([], [], color="0.55", marker="o", label="pruned"),
                       Line2D([], [], color="C3", lw=3, label="the answer"),
                       Line2D([], [], color="C1", ls="--", label="greedy's path")],
              fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.07), ncol=3)
    return tr


def static_figure(settings=((1, 0.0), (2, 0.0), (2, 1.0))):
    """The tree for a few (beam width, alpha) settings, side by side."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(settings), figsize=(6.2 * len(settings), 6.5))
    for ax, (K, alpha) in zip(axes, settings):
        draw_tree(ax, K, alpha)
    fig.tight_layout()
    return fig


def beam_explorer():
    """A beam-width slider and a length-normalisation (alpha) slider over the tree."""
    import ipywidgets as widgets

    from rnncourse.plots import live_figure
    width = widgets.IntSlider(value=2, min=1, max=6, description="beam width", continuous_update=False)
    alpha = widgets.FloatSlider(value=0.0, min=0.0, max=1.5, step=0.25, description="alpha",
                                continuous_update=False)

    def draw(fig):
        draw_tree(fig.subplots(), width.value, alpha.value)
        fig.tight_layout()

    return widgets.VBox([widgets.HBox([width, alpha]), live_figure([width, alpha], draw, figsize=(10, 6.5))])
