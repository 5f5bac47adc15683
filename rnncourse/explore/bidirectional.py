"""Lesson 06's exploration: what each direction of a bidirectional tagger has read, and
how its tag probabilities change when the right context is cut.

At position ``t`` of a sentence of length ``L`` the forward direction has read
``x_1 .. x_t`` and the backward direction ``x_t .. x_L``; the tagger's output
there sees both. *Cutting the right context* at ``keep`` feeds the tagger only
``x_1 .. x_keep``: the forward states up to ``keep`` are unchanged, the backward
ones lose everything after ``keep``. For an ambiguous word the probability of
its true tag jumps to 1 when the cut passes its resolver. Before that the tagger
is outside what it was trained on (no training sentence ends before a resolver),
so its probabilities there are not the word's prior: they can be confidently wrong.

The functions take a trained :class:`rnncourse.experiments.bidirectional.Tagger`
(the lesson loads the saved one) and plain token tensors; ``context_explorer``
wraps them in ipywidgets, ``static_figure`` draws the same story without them.
"""
from __future__ import annotations

import numpy as np
import torch

from rnncourse.data import tagging
from rnncourse.plots import live_figure


def reading_masks(L: int) -> tuple[np.ndarray, np.ndarray]:
    """(forward, backward), each (L, L) bool: row t marks the tokens that direction has
    read when it produces position t's output (forward: ``s <= t``; backward: ``s >= t``)."""
    s = np.arange(L)
    return s[None, :] <= s[:, None], s[None, :] >= s[:, None]


@torch.no_grad()
def tag_probabilities(model, sentence: torch.Tensor, keep: int | None = None) -> torch.Tensor:
    """Tag probabilities (keep, tags) of one sentence (L,) read only up to ``keep`` tokens
    (the right context after them cut); ``keep=None`` reads it all."""
    L = sentence.shape[0]
    keep = L if keep is None else keep
    if not 1 <= keep <= L:
        raise ValueError(f"keep must lie in [1, {L}], got {keep}")
    was = model.training
    model.eval()
    tokens = sentence[:keep][None]  # (1, keep)
    probs = model(tokens, torch.tensor([keep])).softmax(-1)[0]  # (keep, tags)
    model.train(was)
    return probs


@torch.no_grad()
def cut_curve(model, sentence: torch.Tensor, t: int) -> np.ndarray:
    """P(true tag of position t) for every cut ``keep = t+1 .. L``: (L - t,) (index 0: nothing
    to the right of t read). All cuts in one packed batch: row k is the sentence cut after
    ``t + 1 + k`` tokens, the rest padding, which packing never reads."""
    tags = tagging.full_context_tags(sentence)
    L = sentence.shape[0]
    keeps = torch.arange(t + 1, L + 1)  # (n,)
    tokens = sentence[None].repeat(len(keeps), 1)  # (n, L)
    tokens[torch.arange(L)[None] >= keeps[:, None]] = tagging.PAD_ID
    was = model.training
    model.eval()
    probs = model(tokens, keeps).softmax(-1)[:, t, tags[t]]  # (n,)
    model.train(was)
    return probs.numpy()


def example_sentences(n: int = 20, seed: int = 2024) -> list:
    """Sentences of 6 to 12 tokens whose first ambiguous word has a word before it: short
    enough to read in a figure."""
    pool = tagging.tagging_sentences(20 * n, seed).tokens
    keep = [s for s in pool if 6 <= len(s) <= 12 and (first_ambiguous(s) or 0) >= 1]
    return keep[:n]


def first_ambiguous(sentence: torch.Tensor) -> int | None:
    where = tagging.is_ambiguous(sentence).nonzero()
    return int(where[0]) if len(where) else None


def draw_context(fig, model, sentence: torch.Tensor, t: int, keep: int) -> None:
    """Three panels for position ``t`` of ``sentence`` read up to ``keep`` tokens: what each
    direction has read, the tag probabilities at t, and P(true tag at t) against the cut."""
    words = tagging.decode(sentence)
    L = len(words)
    t = min(max(t, 0), L - 1)
    keep = min(max(keep, t + 1), L)
    true = tagging.full_context_tags(sentence)
    resolver = tagging.resolver_position(sentence)[t]
    fig.clear()
    ax1, ax2, ax3 = fig.subplots(1, 3, gridspec_kw={"width_ratios": [2.2, 1.2, 1.6]})

    # 1: the sentence, with what each direction has read for position t, and the cut
    fw, bw = reading_masks(keep)
    grid = np.zeros((2, L))
    grid[0, :keep] = fw[t]
    grid[1, :keep] = bw[t]
    ax1.imshow(grid, cmap="Blues", vmin=0, vmax=1.4, aspect="auto")
    ax1.set_yticks([0, 1], ["forward\nhas read", "backward\nhas read"])
    ax1.set_xticks(range(L), [f"{w}\n{tagging.TAGS[k]}" for w, k in zip(words, true.tolist())], fontsize=7)
    ax1.axvline(keep - 0.5, color="crimson", lw=2)
    ax1.axvspan(t - 0.5, t + 0.5, color="orange", alpha=0.25)
    if resolver != t:
        ax1.annotate("", xy=(t, -0.45), xytext=(resolver, -0.45),
                     arrowprops=dict(arrowstyle="->", color="darkgreen"))
    ax1.set_title(f"position {t} ('{words[t]}'), right context cut after {keep} tokens", fontsize=9)

    # 2: the tag distribution at t for this cut
    probs = tag_probabilities(model, sentence, keep)[t].numpy()
    colors = ["darkgreen" if k == int(true[t]) else "0.6" for k in range(len(tagging.TAGS))]
    ax2.barh(range(len(tagging.TAGS)), probs, color=colors)
    ax2.set_yticks(range(len(tagging.TAGS)), tagging.TAGS, fontsize=8)
    ax2.set_xlim(0, 1)
    ax2.invert_yaxis()
    ax2.set_xlabel("probability")
    ax2.set_title(f"tags at '{words[t]}' (true: {tagging.TAGS[true[t]]})", fontsize=9)

    # 3: P(true tag at t) as the cut moves right
    curve = cut_curve(model, sentence, t)
    ax3.plot(range(t + 1, L + 1), curve, "-o", ms=3)
    ax3.axvline(keep, color="crimson", lw=1)
    if resolver != t:
        ax3.axvline(resolver + 1, color="darkgreen", ls=":", label="resolver read")
        ax3.legend(fontsize=7, loc="lower right")
    ax3.set_ylim(-0.02, 1.02)
    ax3.set_xlabel("tokens read (cut position)")
    ax3.set_ylabel("P(true tag)")
    ax3.set_title("cutting the right context", fontsize=9)
    ax3.grid(alpha=0.3)
    fig.tight_layout()


def static_figure(model, sentence: torch.Tensor, t: int | None = None):
    """The explorer's story without widgets: position t (default: the first ambiguous
    word) with the right context cut just before its resolver, and with all of it."""
    import matplotlib.pyplot as plt
    t = first_ambiguous(sentence) if t is None else t
    resolver = tagging.resolver_position(sentence)[t]
    figs = []
    for keep in (resolver, sentence.shape[0]):
        fig = plt.figure(figsize=(12, 3.2))
        draw_context(fig, model, sentence, t, max(keep, t + 1))
        figs.append(fig)
    return figs


def context_explorer(model=None, sentences=None):
    """Sliders: the sentence, the position t, and how many tokens are read (the cut)."""
    import ipywidgets as widgets

    if model is None:
        from rnncourse.experiments.bidirectional import load_tagger
        model = load_tagger()
    if sentences is None:
        sentences = example_sentences()
    wide = {"description_width": "initial"}
    which = widgets.IntSlider(0, 0, len(sentences) - 1, description="sentence", continuous_update=False,
                              style=wide)
    first = sentences[0]
    t = widgets.IntSlider(first_ambiguous(first), 0, len(first) - 1, description="position t",
                          continuous_update=False, style=wide)
    keep = widgets.IntSlider(len(first), 1, len(first), description="tokens read",
                             continuous_update=False, style=wide)

    def new_sentence(change):
        s = sentences[change["new"]]
        with t.hold_trait_notifications(), keep.hold_trait_notifications():
            t.max, keep.max = len(s) - 1, len(s)
            t.value, keep.value = first_ambiguous(s), len(s)

    which.observe(new_sentence, names="value")

    def draw(fig):
        draw_context(fig, model, sentences[which.value], t.value, keep.value)

    out = live_figure((which, t, keep), draw, figsize=(12, 3.2))
    return widgets.VBox([widgets.HBox([which, t, keep]), out])
