r"""Lesson 08's experiment: character language models trained with truncated BPTT.

    python -m rnncourse.experiments.language_model --threads 1     # writes data/language_model/
    python -m rnncourse.experiments.language_model --only prose    # after the course's prose changed

Two corpora (:mod:`rnncourse.data.text`): the synthetic order-3 Markov source,
whose entropy rate is known exactly, and the course's own prose. The script

* snapshots the prose (``prose.txt``), so an installed copy of the course, which
  has no ``solutions/``, trains and evaluates on the same text, and records the
  snapshot's SHA-256 next to the model trained on it (a test holds the two together);
* trains one LSTM per corpus for longer than a lesson's minute and saves it
  (``synthetic_lstm.pt``, ``prose_lstm.pt``) with its validation curve;
* sweeps the truncation length T of BPTT and the cell type (RNN, LSTM, GRU) on
  the synthetic source, at the same budget of training characters per run and
  for two seeds (``results.json``).

Training reads the stream as lesson 02 taught: :func:`~rnncourse.data.stream.batchify`
cuts it into B rows, :func:`~rnncourse.data.stream.tbptt_chunks` walks them in
chunks of T steps, and the state is carried from chunk to chunk with
:func:`~rnncourse.data.stream.detach_state`. Validation carries the state over the
whole validation stream the same way, without gradients, and reports the mean
cross-entropy in bits per character.

Models are trained with ``torch.nn``'s recurrent layers (fused kernels, fast);
their state_dicts load unchanged into the course's reference models
(``impl="rnncourse"``), which is what the lesson runs.
"""
from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

import rnncourse
from rnncourse.data.stream import batchify, detach_state, tbptt_chunks
from rnncourse.data.text import (PROSE_FILE, Vocab, course_prose, markov_source, prose_snapshot,
                                 split_blocks)
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.kinds import KINDS, kind_of
from rnncourse.paths import data_dir

DATA_DIR = data_dir("language_model")
REGENERATE = "python -m rnncourse.experiments.language_model --threads 1"
LN2 = math.log(2.0)


@dataclass(frozen=True)
class LMSettings(Settings):
    # the synthetic source
    order: int = 3
    source_seed: int = 0
    sample_chars: int = 300_000
    sample_seed: int = 1
    # splitting (both corpora): every 10th block of 2000 characters is validation
    block: int = 2000
    every: int = 10
    # the models
    embed: int = 32
    hidden_synthetic: int = 64
    hidden_prose: int = 256
    dropout: float = 0.2                 # on the embeddings and outputs of the prose model
    batch_size: int = 32
    T: int = 32                          # truncation length of the saved models
    lr: float = 3e-3                     # Adam
    clip: float = 1.0
    chars_synthetic: int = 4_000_000     # training characters (B * T per step) of the saved models
    chars_prose: int = 2_500_000
    eval_every_chars: int = 200_000
    # the sweep (synthetic source): T and cell type at the same budget: every run takes
    # the same number of steps on the same number of characters per step (B * T = sweep_BT),
    # only the chunking differs (B = sweep_BT // T rows of T steps)
    sweep_T: tuple = (1, 2, 4, 8, 32)
    sweep_hidden: int = 64
    sweep_BT: int = 512
    sweep_chars: int = 600_000
    seeds: tuple = (0, 1)
    seed: int = 0


SETTINGS = LMSettings()


class CharLM(torch.nn.Module):
    """Embedding (V, E) -> one recurrent layer (batch-first) -> Linear (H, V).

    ``forward(x (B, T) int64, state=None) -> (logits (B, T, V), state)``; the state is
    a tensor (1, B, H) for RNN/GRU, a pair for the LSTM. ``impl`` picks the layer:
    ``"rnncourse"`` (the course's reference models) or ``"torch"`` (torch.nn); both
    have the same parameters, so a state_dict moves between them.
    """

    def __init__(self, kind: str, vocab_size: int, embed: int = 32, hidden: int = 64,
                 dropout: float = 0.0, impl: str = "rnncourse"):
        super().__init__()
        if impl not in ("rnncourse", "torch"):
            raise ValueError(f"impl must be 'rnncourse' or 'torch', got {impl!r}")
        self.kind = kind_of(kind)
        lib = rnncourse if impl == "rnncourse" else torch.nn
        self.embed = torch.nn.Embedding(vocab_size, embed)
        self.rnn = getattr(lib, self.kind)(embed, hidden, batch_first=True)
        self.drop = torch.nn.Dropout(dropout)
        self.head = torch.nn.Linear(hidden, vocab_size)

    def forward(self, x: torch.Tensor, state=None):
        out, state = self.rnn(self.drop(self.embed(x)), state)  # (B, T, H)
        return self.head(self.drop(out)), state  # (B, T, V)


# ----------------------------------------------------------------------------
# the corpora

def synthetic_corpus(settings: LMSettings = SETTINGS) -> dict:
    """{"source", "vocab", "train", "val", "entropy_rate"} of the Markov source (ids int64)."""
    source = markov_source(settings.order, seed=settings.source_seed)
    ids = source.sample(settings.sample_chars, settings.sample_seed)
    train, val = split_blocks(ids, settings.block, settings.every)
    return {"source": source, "vocab": source.vocab, "train": train, "val": val,
            "entropy_rate": source.entropy_rate()}


def prose_corpus(settings: LMSettings = SETTINGS, text: str | None = None) -> dict:
    """{"text", "vocab", "train", "val"} of the course's prose: the saved snapshot by
    default (the text the saved model was trained on), or ``text``."""
    text = prose_snapshot() if text is None else text
    vocab = Vocab.of(text)
    train, val = split_blocks(vocab.encode(text), settings.block, settings.every)
    return {"text": text, "vocab": vocab, "train": train, "val": val}


# ----------------------------------------------------------------------------
# training and evaluation

@torch.no_grad()
def bits_per_char(model: CharLM, ids: torch.Tensor, batch_size: int = 16, T: int = 256) -> float:
    """Mean cross-entropy in bits of ``model`` on the stream ``ids``, read in B rows with the
    state carried over the whole of each row (eval mode, no gradients)."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    rows = batchify(ids.to(device), batch_size)  # (B, L)
    total, count, state = 0.0, 0, None
    for x, y in tbptt_chunks(rows, T):
        logits, state = model(x, state)  # (B, n, V)
        total += float(F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1), reduction="sum"))
        count += y.numel()
    model.train(was)
    return total / count / LN2


def build_model(kind: str, vocab_size: int, hidden: int, settings: LMSettings = SETTINGS,
                seed: int | None = None, dropout: float = 0.0, impl: str = "torch") -> CharLM:
    torch.manual_seed(settings.seed if seed is None else seed)
    return CharLM(kind, vocab_size, settings.embed, hidden, dropout, impl)


def train(kind: str, train_ids: torch.Tensor, val_ids: torch.Tensor, vocab_size: int, *,
          hidden: int, chars: int, T: int, settings: LMSettings = SETTINGS, seed: int | None = None,
          dropout: float = 0.0, device=None, threads: int | None = None, impl: str = "torch",
          eval_every_chars: int | None = None, batch_size: int | None = None,
          log=None) -> tuple[CharLM, dict, float]:
    """Truncated BPTT over ``train_ids`` for ``chars`` training characters (B * T per step),
    epoch after epoch; returns (model, history, seconds) with the validation bits per
    character every ``eval_every_chars`` in ``history`` ({"chars": [...], "val_bits": [...],
    "train_bits": [...]}). The model comes back with the weights of its best evaluation."""
    device = torch.device("cpu") if device is None else torch.device(device)
    every = eval_every_chars or chars
    with torch_threads(threads):
        model = build_model(kind, vocab_size, hidden, settings, seed, dropout, impl).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        rows = batchify(train_ids.to(device), batch_size or settings.batch_size)  # (B, L)
        history = {"chars": [], "val_bits": [], "train_bits": []}
        best, best_state = float("inf"), None
        seen, next_eval, running, running_n = 0, every, 0.0, 0
        start = time.perf_counter()
        while seen < chars:
            state = None  # each epoch reads the rows from their start
            for x, y in tbptt_chunks(rows, T):
                logits, state = model(x, state)  # (B, n, V)
                loss = F.cross_entropy(logits.reshape(-1, vocab_size), y.reshape(-1))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), settings.clip)
                opt.step()
                state = detach_state(state)  # carry the values, cut the graph
                seen += y.numel()
                running, running_n = running + float(loss.detach()) * y.numel(), running_n + y.numel()
                if seen >= next_eval or seen >= chars:
                    val = bits_per_char(model, val_ids)
                    history["chars"].append(seen)
                    history["val_bits"].append(round(val, 5))
                    history["train_bits"].append(round(running / running_n / LN2, 5))
                    running, running_n = 0.0, 0
                    next_eval += every
                    if val < best:
                        best, best_state = val, {k: v.detach().clone() for k, v in model.state_dict().items()}
                    if log:
                        log(f"  {kind} T={T} seed={seed}: {seen:>9,} chars, val {val:.4f} bits/char")
                if seen >= chars:
                    break
        model.load_state_dict(best_state)
        return model.eval(), history, time.perf_counter() - start


# ----------------------------------------------------------------------------
# the saved runs

PARTS = ("synthetic", "prose", "sweep")


def text_sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def run(settings: LMSettings = SETTINGS, out: Path = DATA_DIR, log=print, sweep: bool = True,
        only: tuple = PARTS) -> dict:
    """Train and save the parts named in ``only`` (of ``PARTS``); the others are kept
    from ``out/results.json``, which must then exist (``--only prose`` retrains the
    prose model on a fresh snapshot after the course's prose has changed)."""
    if not set(only) <= set(PARTS) or not only:
        raise ValueError(f"only must name some of {PARTS}, got {only!r}")
    sweep = sweep and "sweep" in only
    out.mkdir(parents=True, exist_ok=True)
    if set(only) == set(PARTS):
        results = {"config": settings.to_dict(), "regenerate": REGENERATE, "models": {}, "sweep": {}}
    else:
        results = load_results(out)
        if LMSettings.from_dict(results["config"]) != settings:
            raise ValueError("the saved runs used other settings; regenerate everything")
    jobs = []
    if "synthetic" in only or sweep:
        syn = synthetic_corpus(settings)
    if "synthetic" in only:
        jobs.append(("synthetic", syn, settings.hidden_synthetic, settings.chars_synthetic, 0.0))
    if "prose" in only:
        text, where = course_prose()
        (out / PROSE_FILE).write_text(text, encoding="ascii")
        log(f"prose snapshot: {len(text):,} characters from {where}")
        jobs.append(("prose", prose_corpus(settings, text), settings.hidden_prose, settings.chars_prose,
                     settings.dropout))
    for name, corpus, hidden, chars, dropout in jobs:
        model, history, seconds = train("LSTM", corpus["train"], corpus["val"], len(corpus["vocab"]),
                                        hidden=hidden, chars=chars, T=settings.T, settings=settings,
                                        dropout=dropout, eval_every_chars=settings.eval_every_chars, log=log)
        torch.save(model.state_dict(), out / f"{name}_lstm.pt")
        results["models"][name] = {"kind": "LSTM", "hidden": hidden, "dropout": dropout, "T": settings.T,
                                   "vocab": corpus["vocab"].chars, "seconds": round(seconds, 1), **history}
        if name == "prose":
            results["models"][name]["text_sha256"] = text_sha256(corpus["text"])
        log(f"{name}: best val {min(history['val_bits']):.4f} bits/char ({seconds:.0f} s)")
    if sweep:
        for kind in KINDS:
            for T in settings.sweep_T:
                for seed in settings.seeds:
                    _, history, seconds = train(kind, syn["train"], syn["val"], len(syn["vocab"]),
                                                hidden=settings.sweep_hidden, chars=settings.sweep_chars,
                                                T=T, settings=settings, seed=seed,
                                                batch_size=settings.sweep_BT // T)
                    results["sweep"][f"{kind}/{T}/{seed}"] = {
                        "kind": kind, "T": T, "B": settings.sweep_BT // T, "seed": seed,
                        "val_bits": history["val_bits"][-1],
                        "seconds": round(seconds, 1)}
                    log(f"sweep {kind} T={T} seed {seed}: {history['val_bits'][-1]:.4f} bits/char "
                        f"({seconds:.1f} s)")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    return saved_results(path, REGENERATE)


def load_model(name: str, path: Path = DATA_DIR, impl: str = "rnncourse") -> CharLM:
    """The saved LSTM of corpus ``name`` ("synthetic" or "prose"), in eval mode on the CPU,
    built on the course's reference LSTM by default."""
    info = load_results(path)["models"][name]
    model = CharLM(info["kind"], len(info["vocab"]), SETTINGS.embed, info["hidden"], info["dropout"], impl)
    file = Path(path) / f"{name}_lstm.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, DATA_DIR)
    parser.add_argument("--only", nargs="+", choices=PARTS, default=list(PARTS),
                        help="retrain these parts only, keeping the others in results.json")
    parser.add_argument("--no-sweep", action="store_true", help="skip the T x cell sweep")
    args = parser.parse_args(argv)
    with command_run(args):
        run(SETTINGS, args.out, sweep=not args.no_sweep, only=tuple(args.only))

if __name__ == "__main__":
    main()
