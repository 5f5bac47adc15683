"""Exploration and measurements for lesson 10: where a trained attention decoder
looks, step by step, and how much of its attention falls where the answer is.

The models are the saved additive-attention runs of
:mod:`rnncourse.experiments.attention` (digit reversal; dates to ISO). The
logic is plain functions (tested without a browser); ``alignment_explorer``
wraps them in ipywidgets: the learner types a source, the model decodes it
greedily, and a slider steps through the decoder's outputs, showing the
weights of each step over the source.

Two measures of whether an alignment is "interpretable", on teacher-forced
decoding of test examples (the weights that produced the right answer):

* reversal: output position t copies source position L - 1 - t, so the mass
  on that one position (against 1/L for uniform attention);
* dates: an ISO field (year, month, day) comes from one span of the text (the
  4-digit year, the month's name or number, the day's number), so the mass on
  that span (against the span's share of the source).
"""
from __future__ import annotations

import re

import numpy as np
import torch

from rnncourse.data.seq2seq import DATE_TEXT, DIGITS, ISO, MONTHS, collate
from rnncourse.experiments.attention import load_model
from rnncourse.plots import live_figure

EXAMPLES = {"reversal": "31415926535897", "dates": "Tuesday, 3 March 2021"}
_VOCABS = {"reversal": (DIGITS, DIGITS), "dates": (DATE_TEXT, ISO)}
_MODELS: dict = {}


def model_for(task: str):
    """The saved additive-attention model of ``task`` (loaded once)."""
    if task not in _VOCABS:
        raise ValueError(f"task must be 'reversal' or 'dates', got {task!r}")
    if task not in _MODELS:
        _MODELS[task] = load_model(task)
    return _MODELS[task]


def encode_source(task: str, text: str) -> torch.Tensor:
    """The ids of ``text`` in the task's source vocabulary; ValueError naming what it lacks."""
    vocab = _VOCABS[task][0]
    symbols = [vocab.itos[i] for i in range(3, len(vocab))]
    unknown = sorted({c for c in text if c not in symbols})
    if not text or unknown:
        what = "digits 0-9" if task == "reversal" else "letters of month and day names, digits, ' ,./-'"
        raise ValueError(f"the source must be a non-empty string of {what}; "
                         f"not understood: {' '.join(repr(c) for c in unknown) or '(empty)'}")
    return vocab.encode(list(text))


@torch.no_grad()
def alignment(task: str, text: str, model=None, max_len: int = 40) -> dict:
    """Greedy decoding of one source with the weights of every step.

    Returns {"source": list of S characters, "output": list of L symbols (EOS shown
    as "<eos>"), "weights": (L, S) array, row t the weights that produced output t}.
    """
    model = model or model_for(task)
    src = encode_source(task, text).unsqueeze(0)  # (1, S)
    out, weights = model.greedy(src, torch.tensor([src.shape[1]]), max_len)
    n = int(out.lengths[0])
    tokens = out.tokens[0, :n].tolist()
    target = _VOCABS[task][1]
    return {"source": list(text), "output": [target.itos[i] for i in tokens],
            "weights": weights[0, :n].numpy()}


def draw_alignment(fig, al: dict, step: int | None = None, title: str = "") -> None:
    """The heatmap (outputs by source characters) and, for ``step``, that step's
    weights over the source as bars; the output so far in the title."""
    W = al["weights"]
    L, S = W.shape
    step = L - 1 if step is None else max(0, min(step, L - 1))
    ax_map, ax_bar = fig.subplots(1, 2, gridspec_kw={"width_ratios": [1.2, 1]})
    ax_map.imshow(W, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    ax_map.set_xticks(range(S), [c if c != " " else "·" for c in al["source"]], fontsize=7)
    ax_map.set_yticks(range(L), al["output"], fontsize=7)
    ax_map.axhline(step - 0.5, color="w", lw=1)
    ax_map.axhline(step + 0.5, color="w", lw=1)
    ax_map.set_xlabel("source character $j$")
    ax_map.set_ylabel("output step $t$ (the symbol it produced)")
    ax_map.set_title(title or "attention weights $a_{tj}$ (0 to 1)")
    ax_bar.bar(range(S), W[step], color="tab:orange")
    ax_bar.set_xticks(range(S), [c if c != " " else "·" for c in al["source"]], fontsize=7)
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xlabel("source character $j$")
    ax_bar.set_ylabel(f"weight $a_{{{step},j}}$")
    so_far = "".join(s if s != "<eos>" else " [end]" for s in al["output"][:step + 1])
    ax_bar.set_title(f"step {step}: produced '{al['output'][step]}'  (so far: {so_far})", fontsize=9)
    if hasattr(fig, "tight_layout"):  # a figure of its own (a subfigure is laid out by its parent)
        fig.tight_layout()


def static_figure(examples: dict | None = None):
    """The alignments of one reversal and one date example (the exploration's static view)."""
    import matplotlib.pyplot as plt
    examples = examples or EXAMPLES
    fig = plt.figure(figsize=(11, 7.5), layout="constrained")
    subfigs = fig.subfigures(2, 1)
    for sub, (task, text) in zip(subfigs, examples.items()):
        al = alignment(task, text)
        draw_alignment(sub, al, title=f"{task}: '{text}' -> '{''.join(al['output'][:-1])}'")
    return fig


def alignment_explorer(task: str = "reversal", text: str | None = None):
    """Type a source, step through the decoder's outputs (needs a running kernel)."""
    import ipywidgets as widgets
    task_box = widgets.Dropdown(options=list(EXAMPLES), value=task, description="task")
    source = widgets.Text(value=text or EXAMPLES[task], description="source", continuous_update=False)
    step = widgets.IntSlider(value=0, min=0, max=40, description="output step", continuous_update=False)
    state: dict = {}

    def on_task(change):
        source.value = EXAMPLES[change["new"]]
    task_box.observe(on_task, names="value")

    def draw(fig):
        key = (task_box.value, source.value)
        if state.get("key") != key:
            try:
                state["al"], state["error"] = alignment(*key), None
            except ValueError as e:
                state["al"], state["error"] = None, str(e)
            state["key"] = key
            if state["al"] is not None:
                step.max = len(state["al"]["output"]) - 1
        if state["error"]:
            fig.text(0.02, 0.5, state["error"], wrap=True)
            return
        draw_alignment(fig, state["al"], step.value)

    out = live_figure([task_box, source, step], draw, figsize=(10, 4))
    return widgets.VBox([widgets.HBox([task_box, source]), step, out])


# ----------------------------------------------------------------------------
# how much attention falls where the answer is

@torch.no_grad()
def teacher_forced_weights(model, pairs: list) -> tuple:
    """(weights (B, T, S) of the decoder reading the true previous tokens, the batch)."""
    batch = collate(pairs)
    memory, mask, state = model.encode(batch.src, batch.src_lengths)
    _, _, weights = model.decoder(batch.tgt_in, state, memory, mask)
    return weights, batch


def reversal_mass(model, pairs: list) -> dict:
    """Mean attention mass on source position L - 1 - t at output t (EOS left out), how
    often that position has the largest weight, and the uniform baseline mean 1/L."""
    weights, batch = teacher_forced_weights(model, pairs)
    mass, hits, uniform = [], [], []
    for b, (src, _) in enumerate(pairs):
        L = len(src)
        rows = weights[b, torch.arange(L), L - 1 - torch.arange(L)]  # (L,)
        mass += rows.tolist()
        hits += (weights[b, :L, :L].argmax(-1) == L - 1 - torch.arange(L)).tolist()
        uniform += [1 / L] * L
    return {"mass": float(np.mean(mass)), "argmax": float(np.mean(hits)), "uniform": float(np.mean(uniform))}


def date_field_spans(text: str) -> dict:
    """{"year" | "month" | "day": (start, end)} character spans of a human-readable date."""
    lower = text.lower()
    year = re.search(r"\d{4}", text)
    numbers = [m for m in re.finditer(r"\d+", text) if m.span() != year.span()]
    words = [m for m in re.finditer(r"[a-z]+", lower) if any(n.startswith(m.group()) for n in MONTHS)
             and len(m.group()) >= 3]
    spans = {"year": year.span()}
    if words:  # the month is a name: the one other number is the day
        spans["month"], spans["day"] = words[0].span(), numbers[0].span()
    elif year.start() == 0:  # Y/MM/DD
        spans["month"], spans["day"] = numbers[0].span(), numbers[1].span()
    else:  # D.M.Y
        spans["day"], spans["month"] = numbers[0].span(), numbers[1].span()
    return spans


ISO_FIELDS = {"year": range(0, 4), "month": range(5, 7), "day": range(8, 10)}  # output positions


def dates_mass(model, examples: list) -> dict:
    """``examples``: (text, iso) strings. Per field: the mean attention mass that the
    field's output characters put on the field's span of the text, and the span's
    mean share of the text (what uniform attention would put there)."""
    pairs = [(DATE_TEXT.encode(list(t)), ISO.encode(list(i))) for t, i in examples]
    weights, _ = teacher_forced_weights(model, pairs)
    out = {}
    for field, positions in ISO_FIELDS.items():
        mass, share = [], []
        for b, (text, _) in enumerate(examples):
            a, z = date_field_spans(text)[field]
            for t in positions:
                mass.append(float(weights[b, t, a:z].sum()))
                share.append((z - a) / len(text))
        out[field] = {"mass": float(np.mean(mass)), "uniform": float(np.mean(share))}
    return out


# ----------------------------------------------------------------------------
# the cost of self-attention against the recurrence's

def _best_ms(fn, device, reps: int = 3) -> float:
    import time
    best = float("inf")
    for _ in range(reps):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        best = min(best, time.perf_counter() - start)
    return 1000 * best


@torch.no_grad()
def self_attention_cost(lengths=(64, 128, 256, 512, 1024), size: int = 64, batch: int = 2,
                        device=None, seed: int = 0) -> dict:
    """Forward time (best of 3, ms) of :func:`rnncourse.attention.self_attention` and of
    a ``torch.nn.GRU`` of the same width over sequences of each length, and the number
    of attention weights held (B T^2)."""
    from rnncourse.attention import self_attention
    device = torch.device("cpu") if device is None else torch.device(device)
    torch.manual_seed(seed)
    gru = torch.nn.GRU(size, size, batch_first=True).to(device)
    out = {"T": list(lengths), "batch": batch, "attention_ms": [], "gru_ms": [], "weights": []}
    for T in lengths:
        x = torch.randn(batch, T, size, device=device)  # (B, T, D)
        mask = torch.ones(batch, T, dtype=torch.bool, device=device)
        self_attention(x[:, :8], mask[:, :8])  # warm-up of the kernels
        out["attention_ms"].append(_best_ms(lambda: self_attention(x, mask), device))
        out["gru_ms"].append(_best_ms(lambda: gru(x), device))
        out["weights"].append(batch * T * T)
    return out
