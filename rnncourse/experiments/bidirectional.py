"""Lesson 06's experiments: unidirectional against bidirectional taggers, and depth.

    python -m rnncourse.experiments.bidirectional --threads 1   # writes data/bidirectional/

The task is :mod:`rnncourse.data.tagging`: tag every token of a sentence whose
ambiguous words are decided by a later token. A tagger reads token ids through an
embedding, one ``torch.nn.LSTM`` (packed, so the padding is never read) and a
linear layer per position. Three comparisons, each over several seeds, each
model trained with the same steps, batches, optimiser and clipping:

* **direction**: a unidirectional LSTM (hidden ``H``), a unidirectional LSTM
  with as many parameters as the bidirectional one (hidden ``wide_hidden``), and a
  bidirectional LSTM (``H`` per direction); token accuracy on a fixed test set
  against the exact left-to-right ceiling of that set;
* **depth**: bidirectional taggers of 1 to 4 layers (dropout between layers),
  ``depth_steps`` steps evaluated every ``depth_eval_every``: accuracy, and the
  gradient norm that reaches the first layer's weights, measured on the test set at
  initialisation and after training;
* the trained one-layer bidirectional tagger of seed 0 is saved for the lesson's exploration.

About five minutes of one CPU core in all: too long for the lesson's minute, so
the lesson loads ``results.json`` and ``bi_tagger.pt`` and retrains one seed live.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncourse.data import tagging
from rnncourse.data.stream import BatchStream
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.paths import data_dir
from rnncourse.train import History, fit

DATA_DIR = data_dir("bidirectional")
REGENERATE = "python -m rnncourse.experiments.bidirectional --threads 1"
IGNORE = -100  # the tag at padded positions: cross_entropy's ignore_index (lesson 07 masks by hand)


@dataclass(frozen=True)
class BidirectionalSettings(Settings):
    embedding_dim: int = 16
    hidden_size: int = 24          # per direction
    wide_hidden: int = 37          # a unidirectional LSTM with as many parameters as the bidirectional one
    batch_size: int = 32
    lr: float = 1e-2               # Adam
    clip: float = 1.0
    steps: int = 300
    eval_every: int = 50
    test_size: int = 1000          # sentences in the fixed test set
    test_seed: int = 12345
    seeds: tuple = (0, 1, 2, 3, 4)  # direction comparison
    depths: tuple = (1, 2, 3, 4)
    depth_seeds: tuple = (0, 1, 2)
    depth_steps: int = 150         # every depth reaches 100% well before 300 steps:
    depth_eval_every: int = 10     # evaluate often to see how fast
    dropout: float = 0.2           # between stacked layers
    seed: int = 0


SETTINGS = BidirectionalSettings()
KINDS = ("uni", "uni_wide", "bi")  # the direction comparison's three taggers


class Tagger(torch.nn.Module):
    """Embedding -> LSTM (packed) -> linear: token ids (B, T) and lengths (B,) -> logits (B, T, tags)."""

    def __init__(self, embedding_dim: int, hidden_size: int, bidirectional: bool, num_layers: int = 1,
                 dropout: float = 0.0):
        super().__init__()
        self.embed = torch.nn.Embedding(tagging.vocab_size(), embedding_dim, padding_idx=tagging.PAD_ID)
        self.lstm = torch.nn.LSTM(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True,
                                  bidirectional=bidirectional, dropout=dropout if num_layers > 1 else 0.0)
        self.head = torch.nn.Linear(hidden_size * (2 if bidirectional else 1), tagging.num_tags())

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        T = tokens.shape[1]
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = self.lstm(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, D*H), zeros at pads
        return self.head(out)  # (B, T, tags)


def build_model(kind: str, settings: BidirectionalSettings = SETTINGS, seed: int | None = None,
                num_layers: int = 1) -> Tagger:
    """``kind`` in KINDS; seeded initial weights."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    torch.manual_seed(settings.seed if seed is None else seed)
    H = settings.wide_hidden if kind == "uni_wide" else settings.hidden_size
    return Tagger(settings.embedding_dim, H, kind == "bi", num_layers, settings.dropout)


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def tag_loss(logits: torch.Tensor, tags: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the real tokens (the padding's tags are IGNORE)."""
    return torch.nn.functional.cross_entropy(logits.transpose(1, 2), tags, ignore_index=IGNORE)


def test_set(settings: BidirectionalSettings = SETTINGS, device=None) -> tagging.TaggingBatch:
    """The fixed test sentences, one padded batch (tags padded with IGNORE)."""
    return tagging.tagging_batch(settings.test_size, settings.test_seed, tag_pad_value=IGNORE, device=device)


@torch.no_grad()
def accuracy(model: Tagger, batch: tagging.TaggingBatch) -> dict:
    """Token accuracy over all real tokens, and over the ambiguous words alone."""
    was = model.training
    model.eval()
    pred = model(batch.tokens, batch.lengths).argmax(-1)  # (B, T)
    model.train(was)
    right = (pred == batch.tags) & batch.mask
    amb = tagging.is_ambiguous(batch.tokens) & batch.mask
    return {"accuracy": float(right.sum() / batch.mask.sum()),
            "ambiguous": float((right & amb).sum() / amb.sum())}


def batches(settings: BidirectionalSettings, seed: int, device=None) -> BatchStream:
    """Fresh training batches (tokens, lengths, tags), seeded."""
    def make(gen):
        b = tagging.tagging_batch(settings.batch_size, gen, tag_pad_value=IGNORE, device=device)
        return b.tokens, b.lengths, b.tags
    return BatchStream(make, seed=1000 + seed)


def first_layer_grad_norm(model: Tagger, batch: tagging.TaggingBatch) -> float:
    """Norm of the loss's gradient with respect to the first layer's LSTM weights (both
    directions), on ``batch``, with dropout off (eval mode)."""
    was = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    tag_loss(model(batch.tokens, batch.lengths), batch.tags).backward()
    grads = [p.grad for n, p in model.lstm.named_parameters() if "_l0" in n]
    model.zero_grad(set_to_none=True)
    model.train(was)
    return float(torch.linalg.vector_norm(torch.cat([g.flatten() for g in grads])))


def train(kind: str, settings: BidirectionalSettings = SETTINGS, *, num_layers: int = 1,
          steps: int | None = None, seed: int | None = None, device=None, progress: bool | None = False,
          threads: int | None = None, eval_every: int | None = None) -> tuple[Tagger, History, float]:
    """Train one tagger; ``history.metric("accuracy")`` holds the test accuracy every ``eval_every`` steps."""
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    with torch_threads(threads):
        model = build_model(kind, settings, seed, num_layers).to(device)
        test = test_set(settings, device)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        start = time.perf_counter()
        history = fit(model, batches(settings, seed, device), tag_loss, opt, steps=steps or settings.steps,
                      clip=settings.clip, eval_fn=lambda m: accuracy(m, test),
                      eval_every=eval_every or settings.eval_every, device=device, progress=progress,
                      desc=f"{kind} x{num_layers}")
        return model, history, time.perf_counter() - start


def run(settings: BidirectionalSettings = SETTINGS, out: Path = DATA_DIR, log=print,
        parts: tuple = ("direction", "depth")) -> dict:
    """Train the parts asked for and write results.json (a part not asked for is kept
    from the saved file)."""
    out.mkdir(parents=True, exist_ok=True)
    test = test_set(settings)
    results = {"config": settings.to_dict(), "regenerate": REGENERATE,
               "ceiling": test.ceiling, "expected_ceiling": tagging.expected_ceiling(),
               "direction": {}, "depth": {}}
    if set(parts) != {"direction", "depth"}:
        saved = load_results(out)
        results.update({p: saved[p] for p in ("direction", "depth") if p not in parts})
    for kind in KINDS if "direction" in parts else ():
        for seed in settings.seeds:
            model, history, seconds = train(kind, settings, seed=seed)
            steps, acc = history.metric("accuracy")
            final = accuracy(model, test)
            results["direction"][f"{kind}/{seed}"] = {
                "kind": kind, "seed": seed, "parameters": count_parameters(model), "steps": steps,
                "accuracy": [round(a, 4) for a in acc], "final": final, "seconds": round(seconds, 1)}
            log(f"{kind:>8} seed {seed}: accuracy {final['accuracy']:.4f}, ambiguous {final['ambiguous']:.3f} "
                f"(ceiling {test.ceiling:.4f}; {seconds:.1f} s)")
            if kind == "bi" and seed == settings.seeds[0]:
                torch.save(model.state_dict(), out / "bi_tagger.pt")
    for depth in settings.depths if "depth" in parts else ():
        for seed in settings.depth_seeds:
            init = build_model("bi", settings, seed, depth)
            g0 = first_layer_grad_norm(init, test)
            model, history, seconds = train("bi", settings, num_layers=depth, seed=seed,
                                            steps=settings.depth_steps, eval_every=settings.depth_eval_every)
            final = accuracy(model, test)
            results["depth"][f"{depth}/{seed}"] = {
                "layers": depth, "seed": seed, "parameters": count_parameters(model),
                "grad_norm_init": g0, "grad_norm_trained": first_layer_grad_norm(model, test),
                "steps": history.metric("accuracy")[0],
                "accuracy": [round(a, 4) for a in history.metric("accuracy")[1]],
                "final": final, "seconds": round(seconds, 1)}
            log(f"depth {depth} seed {seed}: accuracy {final['accuracy']:.4f}, first-layer grad norm "
                f"{g0:.3g} at init ({seconds:.1f} s)")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    return saved_results(path, REGENERATE)


def load_tagger(path: Path = DATA_DIR, settings: BidirectionalSettings = SETTINGS) -> Tagger:
    """The one-layer bidirectional tagger of seed 0, in eval mode on the CPU."""
    model = Tagger(settings.embedding_dim, settings.hidden_size, True)
    file = Path(path) / "bi_tagger.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, DATA_DIR)
    parser.add_argument("--part", choices=("direction", "depth"), default=None,
                        help="retrain one part only, keeping the other from the saved file")
    args = parser.parse_args(argv)
    with command_run(args):
        run(SETTINGS, args.out, parts=(args.part,) if args.part else ("direction", "depth"))

if __name__ == "__main__":
    main()
