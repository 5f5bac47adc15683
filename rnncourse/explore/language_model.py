r"""Lesson 08: sampling from a character language model, reading its hidden units,
and the saved truncation / cell-type sweep.

* :func:`temperature_probs` is the distribution sampled at temperature
  :math:`\tau`: :math:`\mathrm{softmax}(z / \tau)`, the one-hot of the argmax at
  :math:`\tau = 0`. :func:`generate` samples text with it, one character at a time,
  carrying the state; :func:`entropy_bits` is the entropy of that distribution,
  averaged over a sample's steps (bits per character).
* :func:`run_states` logs the hidden (and cell) state at every character;
  :func:`text_features` describes every character (position in its word, inside
  brackets, inside ``$...$``, inside backticks, position in its line);
  :func:`find_units` finds, for each feature, the unit whose activation follows it
  best (the largest absolute correlation).
* :func:`keep_graph_errors` runs the loop a learner writes when they forget
  ``detach``, and returns what torch raises.
* :func:`temperature_explorer`: a temperature slider, a prefix box and a button
  for a new draw; :func:`static_figure`: entropy and a few samples against
  temperature, for where widgets don't render.

Shapes: ids (T,) or (B, T) int64; logits (B, V); states (T, H).
"""
from __future__ import annotations

import html
import math

import numpy as np
import torch
import torch.nn.functional as F

from rnncourse.guard import check_reference_allowed
from rnncourse.kinds import KINDS

LN2 = math.log(2.0)


# ----------------------------------------------------------------------------
# temperature and sampling

def temperature_probs(logits: torch.Tensor, tau: float) -> torch.Tensor:
    r""":math:`\mathrm{softmax}(z / \tau)` over the last axis; at :math:`\tau = 0` the one-hot
    of the argmax (the limit as :math:`\tau \to 0^+`). logits (..., V) -> (..., V)."""
    check_reference_allowed("explore.language_model.temperature_probs")
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}")
    if tau == 0:
        return torch.zeros_like(logits).scatter_(-1, logits.argmax(-1, keepdim=True), 1.0)
    return torch.softmax(logits / tau, dim=-1)


def entropy_of(p: torch.Tensor) -> torch.Tensor:
    r""":math:`-\sum_a p_a \log_2 p_a` over the last axis, in bits (0 log 0 = 0)."""
    return -(p * torch.where(p > 0, p.log2(), torch.zeros_like(p))).sum(-1)


@torch.no_grad()
def generate(model, vocab, prefix: str, n: int, tau: float, generator=None) -> dict:
    """Sample ``n`` characters after ``prefix`` at temperature ``tau``.

    Returns {"text": the sampled characters, "entropy": the entropy of each step's
    sampling distribution (bits, (n,)), "bits": -log2 of the model's own (tau = 1)
    probability of each sampled character ((n,))}. The prefix is read first, so the
    sample continues it; the state is carried from step to step.
    """
    model.eval()
    gen = generator if generator is not None else torch.Generator().manual_seed(0)
    device = next(model.parameters()).device
    ids = vocab.encode(prefix or vocab.chars[0]).to(device).unsqueeze(0)  # (1, P)
    logits, state = model(ids)  # (1, P, V)
    z = logits[:, -1]  # (1, V)
    out, ent, bits = [], [], []
    for _ in range(n):
        p = temperature_probs(z.double(), tau)  # (1, V)
        a = torch.multinomial(p.cpu(), 1, generator=gen) if tau > 0 else p.argmax(-1, keepdim=True).cpu()
        ent.append(float(entropy_of(p)))
        bits.append(float(-torch.log_softmax(z.double(), -1)[0, a.item()] / LN2))
        out.append(a.item())
        logits, state = model(a.to(device), state)  # (1, 1, V)
        z = logits[:, -1]
    return {"text": vocab.decode(out), "entropy": np.array(ent), "bits": np.array(bits)}


def samples_by_temperature(model, vocab, prefix: str, taus=(0.0, 0.5, 1.0, 1.5), n: int = 200,
                           seed: int = 0) -> dict:
    """tau -> generate(...) with the same seed for every temperature."""
    return {tau: generate(model, vocab, prefix, n, tau, torch.Generator().manual_seed(seed)) for tau in taus}


# ----------------------------------------------------------------------------
# the hidden units

@torch.no_grad()
def run_states(model, ids: torch.Tensor) -> dict:
    """Read ``ids`` (T,) from a zero state and return {"h": (T, H), "c": (T, H) for an
    LSTM}: the state after every character, from the model's own layer, one step at a time."""
    model.eval()
    ids = ids.to(next(model.parameters()).device)
    state, hs, cs = None, [], []
    for t in range(ids.numel()):
        _, state = model(ids[t:t + 1].view(1, 1), state)
        h = state[0] if isinstance(state, tuple) else state
        hs.append(h.reshape(-1))
        if isinstance(state, tuple):
            cs.append(state[1].reshape(-1))
    out = {"h": torch.stack(hs).cpu().numpy()}
    if cs:
        out["c"] = torch.stack(cs).cpu().numpy()
    return out


def text_features(text: str) -> dict:
    """name -> (T,) float array describing each character of ``text``:

    * "position in word": letters since the last non-letter (0 on a non-letter);
    * "inside ( )": 1 between an opening and its closing parenthesis;
    * "inside $ $": 1 inside inline LaTeX;
    * "inside backticks": 1 inside `code`;
    * "position in line": characters since the last newline.
    """
    word = np.zeros(len(text))
    paren, dollar, tick, line = (np.zeros(len(text)) for _ in range(4))
    w = depth = col = 0
    in_dollar = in_tick = False
    for i, ch in enumerate(text):
        w = w + 1 if ch.isalpha() else 0
        if ch == "(":
            depth += 1
        if ch == "$":
            in_dollar = not in_dollar
        if ch == "`":
            in_tick = not in_tick
        col = 0 if ch == "\n" else col + 1
        word[i], paren[i], dollar[i], tick[i], line[i] = w, depth > 0, in_dollar, in_tick, col
        if ch == ")":
            depth = max(depth - 1, 0)
    return {"position in word": word, "inside ( )": paren, "inside $ $": dollar,
            "inside backticks": tick, "position in line": line}


def find_units(states: np.ndarray, features: dict) -> dict:
    """feature -> (unit, correlation): the unit of ``states`` (T, H) whose activation has the
    largest absolute Pearson correlation with the feature over the T characters."""
    s = (states - states.mean(0)) / (states.std(0) + 1e-12)  # (T, H)
    out = {}
    for name, f in features.items():
        if f.std() == 0:
            continue
        g = (f - f.mean()) / f.std()
        corr = (s * g[:, None]).mean(0)  # (H,)
        unit = int(np.abs(corr).argmax())
        out[name] = (unit, float(corr[unit]))
    return out


def plot_units(ax, text: str, states: np.ndarray, units, labels=None):
    """A heatmap of a few units' activations (rows) under the characters of ``text`` (columns)."""
    rows = states[:, list(units)].T  # (units, T)
    im = ax.imshow(rows, aspect="auto", cmap="coolwarm", vmin=-1, vmax=1, interpolation="nearest")
    shown = {"\n": "⏎", " ": "·", "$": r"\$"}  # a bare $ would start matplotlib's mathtext
    ax.set_xticks(range(len(text)), [shown.get(c, c) for c in text], fontsize=7, family="monospace")
    names = labels or [f"unit {u}" for u in units]
    ax.set_yticks(range(len(units)), [n.replace("$", r"\$") for n in names], fontsize=8)
    ax.set_xlabel("character read")
    ax.set_title("Hidden-unit activations while the model reads (blue -1, red +1)")
    return im


# ----------------------------------------------------------------------------
# what keeping the graph does

def keep_graph_errors(kind: str = "LSTM", T: int = 5, seed: int = 0) -> dict:
    """Run truncated BPTT over three chunks without ``detach`` and return what torch
    raises: {"no retain_graph": message, "retain_graph=True": message}. Tiny model,
    tiny stream: it fails at the second chunk, in milliseconds."""
    errors = {}
    for retain in (False, True):
        torch.manual_seed(seed)
        embed, rnn = torch.nn.Embedding(5, 4), getattr(torch.nn, kind)(4, 6, batch_first=True)
        head = torch.nn.Linear(6, 5)
        params = [*embed.parameters(), *rnn.parameters(), *head.parameters()]
        opt = torch.optim.SGD(params, lr=0.1)
        rows = torch.randint(0, 5, (2, 3 * T + 1))
        state = None
        name = "retain_graph=True" if retain else "no retain_graph"
        try:
            for i in range(0, 3 * T, T):
                out, state = rnn(embed(rows[:, i:i + T]), state)  # state NOT detached
                loss = F.cross_entropy(head(out).reshape(-1, 5), rows[:, i + 1:i + 1 + T].reshape(-1))
                opt.zero_grad()
                loss.backward(retain_graph=retain)
                opt.step()
            errors[name] = None
        except RuntimeError as e:
            errors[name] = str(e).split("\n")[0]
    return errors


# ----------------------------------------------------------------------------
# the saved sweep

def sweep_table(results: dict) -> dict:
    """kind -> (T values, mean validation bits over seeds, every seed's bits (seeds, len(T)))."""
    runs = results["sweep"].values()
    Ts = sorted({r["T"] for r in runs})
    out = {}
    for kind in KINDS:
        per = np.array([[r["val_bits"] for r in runs if r["kind"] == kind and r["T"] == T] for T in Ts]).T
        if per.size:
            out[kind] = (Ts, per.mean(0), per)
    return out


def plot_sweep(ax, results: dict, limit: float | None = None):
    """Validation bits per character against T, one line per cell type, seeds as dots."""
    for j, (kind, (Ts, mean, per)) in enumerate(sweep_table(results).items()):
        ax.plot(Ts, mean, "-o", color=f"C{j}", label=kind)
        for row in per:
            ax.plot(Ts, row, ".", color=f"C{j}", alpha=0.5)
    if limit is not None:
        ax.axhline(limit, color="k", ls="--", lw=1, label="entropy rate (the limit)")
    ax.set_xscale("log", base=2)
    Ts = sorted({r["T"] for r in results["sweep"].values()})
    ax.set_xticks(Ts, [str(T) for T in Ts])
    ax.set_xlabel("truncation length T of BPTT (steps, log scale)")
    ax.set_ylabel("validation bits per character")
    ax.set_title("Same budget, different truncation")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    return ax


# ----------------------------------------------------------------------------
# the exploration

def sample_html(sample: dict, prefix: str, tau: float) -> str:
    """The sample as HTML: the prefix in bold, the sampled text after it, and its entropy."""
    body = html.escape(sample["text"])
    return (f"<div style='font-family:monospace;white-space:pre-wrap;max-width:60em'>"
            f"<b>{html.escape(prefix)}</b>{body}</div>"
            f"<p>temperature {tau:.2f}: entropy of the sampling distribution "
            f"{sample['entropy'].mean():.2f} bits per character; the model's own surprise at "
            f"what was drawn {sample['bits'].mean():.2f} bits per character</p>")


def static_figure(model, vocab, prefix: str, taus=(0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0),
                  n: int = 200, seed: int = 0):
    """Entropy of the sampling distribution and the model's surprise at the sample,
    against temperature: what the slider trades."""
    import matplotlib.pyplot as plt
    samples = samples_by_temperature(model, vocab, prefix, taus, n, seed)
    fig, ax = plt.subplots(figsize=(6, 3.6))
    ax.plot(taus, [s["entropy"].mean() for s in samples.values()], "-o", label="entropy of softmax(z / tau)")
    ax.plot(taus, [s["bits"].mean() for s in samples.values()], "-s",
            label="-log2 p(sampled char) under the model (tau = 1)")
    ax.axvline(1.0, color="0.5", ls=":", lw=1)
    ax.set_xlabel("temperature tau")
    ax.set_ylabel("bits per character")
    ax.set_title(f"Sampling {n} characters at each temperature")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def temperature_explorer(model, vocab, prefix: str = "The ", n: int = 240):
    """A temperature slider, a prefix box and a "new sample" button over samples of ``model``."""
    import ipywidgets as widgets

    wide = {"description_width": "initial"}
    tau = widgets.FloatSlider(value=1.0, min=0.0, max=2.0, step=0.05, description="temperature",
                              continuous_update=False, style=wide)
    box = widgets.Text(value=prefix, description="prefix", continuous_update=False, style=wide)
    again = widgets.Button(description="new sample")
    seed = {"value": 0}
    out = widgets.HTML()

    def redraw(_change=None):
        text = "".join(c for c in box.value if c in vocab.chars)  # characters the model knows
        sample = generate(model, vocab, text, n, tau.value, torch.Generator().manual_seed(seed["value"]))
        out.value = sample_html(sample, text, tau.value)

    def new_seed(_button):
        seed["value"] += 1
        redraw()

    tau.observe(redraw, names="value")
    box.observe(redraw, names="value")
    again.on_click(new_seed)
    redraw()
    return widgets.VBox([widgets.HBox([tau, box, again]), out])
