"""Lesson 07's experiment: many-to-one classification of the late-flip task with
three readouts of the same LSTM, accuracy against input length and flip position.

    python -m rnncourse.experiments.masking             # trains all, writes data/masking/
    python -m rnncourse.experiments.masking --threads 1

The model embeds the word ids (``nn.Embedding(padding_idx=0)``), runs one
``nn.LSTM`` over the padded batch (no packing: the padding is read like any
token, as in most code that forgets it), and classifies a summary of its
outputs ``(B, T, H)`` with a linear layer. Only the summary differs:

* ``last``: the output at each sequence's last real token, ``outputs[b, lengths[b] - 1]``;
* ``padded_last``: the output at the last padded position, ``outputs[:, -1]``, which for
  a short sequence comes after many steps of reading padding;
* ``mean``: the mean of the outputs over the real tokens (masked mean pooling).

All three train with the same seed, batches, budget and optimiser, and have the
same parameters (the readout has none). Each is evaluated on the same fixed
test set, batched the way it was trained (random partners, padded to the
longest), and the per-example correctness is saved so that the lesson can plot
accuracy against length and against the flip's position. Nine runs (three
readouts, three seeds) take a few minutes of CPU: too long for the lesson's
minute, so this script saves ``results.json`` and the lesson loads it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncourse import masking
from rnncourse.data.padding import pad_batch
from rnncourse.data.sentiment import PAD, VOCAB_SIZE, sentiment_examples, sentiment_stream
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.paths import data_dir
from rnncourse.train import fit

DATA_DIR = data_dir("masking")  # data/masking in a checkout, the installed copy otherwise
REGENERATE = "python -m rnncourse.experiments.masking"
READOUTS = ("last", "padded_last", "mean")
READOUT_NAMES = {"last": "last valid state", "padded_last": "padded last position",
                 "mean": "masked mean pooling"}


@dataclass(frozen=True)
class MaskingSettings(Settings):
    readouts: tuple = READOUTS
    seeds: tuple = (0, 1, 2)
    embed_size: int = 16
    hidden_size: int = 32
    batch_size: int = 32
    lr: float = 5e-3            # Adam
    clip: float = 1.0           # global gradient-norm clipping
    steps: int = 600
    min_len: int = 5
    max_len: int = 100
    flip_prob: float = 0.5
    max_clause: int = 8
    test_size: int = 1024
    test_seed: int = 12345      # the fixed test set every run is scored on
    seed: int = 0               # the default seed of a single run


SETTINGS = MaskingSettings()  # what data/masking/ was made with


class SentimentClassifier(torch.nn.Module):
    """Embedding -> one LSTM over the padded batch -> readout -> linear: tokens (B, T),
    lengths (B,) -> logits (B, 2)."""

    def __init__(self, readout: str, vocab_size: int = VOCAB_SIZE, embed_size: int = 16,
                 hidden_size: int = 32):
        super().__init__()
        if readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {readout!r}")
        self.readout = readout
        self.embed = torch.nn.Embedding(vocab_size, embed_size, padding_idx=PAD)
        self.rnn = torch.nn.LSTM(embed_size, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 2)

    def summary(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The (B, H) vector the head classifies."""
        outputs, _ = self.rnn(self.embed(tokens))  # (B, T, H), padding read as input
        if self.readout == "last":
            return masking.last_valid(outputs, lengths)  # (B, H): outputs[b, lengths[b]-1]
        if self.readout == "padded_last":
            return outputs[:, -1]  # (B, H): after reading the padding too
        mask = masking.lengths_to_mask(lengths, tokens.shape[1])  # (B, T)
        return masking.masked_mean(outputs, mask)  # (B, H)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.head(self.summary(tokens, lengths))  # (B, 2)


def build_model(readout: str, settings: MaskingSettings = SETTINGS, seed: int | None = None):
    """The classifier with seeded initial weights: the same for every readout at one seed."""
    torch.manual_seed(settings.seed if seed is None else seed)
    return SentimentClassifier(readout, VOCAB_SIZE, settings.embed_size, settings.hidden_size)


def _task(settings: MaskingSettings) -> dict:
    return {"min_len": settings.min_len, "max_len": settings.max_len,
            "flip_prob": settings.flip_prob, "max_clause": settings.max_clause}


def test_set(settings: MaskingSettings = SETTINGS):
    """The fixed test examples (a :class:`~rnncourse.data.sentiment.SentimentData`)."""
    return sentiment_examples(settings.test_size, generator=settings.test_seed, **_task(settings))


def predict(model: SentimentClassifier, data, batch_size: int, device=None,
            order_seed: int = 0) -> torch.Tensor:
    """Predicted labels (n,) for ``data``, batched as in training: examples in a
    seeded random order, ``batch_size`` at a time, each batch padded to its longest."""
    device = next(model.parameters()).device if device is None else device
    n = len(data.sequences)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(order_seed))
    pred = torch.empty(n, dtype=torch.int64)
    model.eval()
    with torch.no_grad():
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            padded, lengths, _ = pad_batch([data.sequences[i] for i in idx.tolist()], pad_value=PAD)
            pred[idx] = model(padded.to(device), lengths.to(device)).argmax(dim=1).cpu()
    return pred


def train(readout: str, settings: MaskingSettings = SETTINGS, *, steps: int | None = None,
          seed: int | None = None, device=None, progress: bool | None = False,
          threads: int | None = None) -> tuple:
    """Train one classifier; return (model, history, seconds). ``history.metric("accuracy")``
    holds the test accuracy at the end."""
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    with torch_threads(threads):
        model = build_model(readout, settings, seed).to(device)
        data = test_set(settings)

        def accuracy(m):
            return {"accuracy": (predict(m, data, settings.batch_size, device) == data.labels).float().mean()}

        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        batches = sentiment_stream(settings.batch_size, seed=1000 + seed, device=device, **_task(settings))
        start = time.perf_counter()
        history = fit(model, batches, torch.nn.functional.cross_entropy, opt,
                      steps=steps or settings.steps, clip=settings.clip, eval_fn=accuracy,
                      eval_every=steps or settings.steps, device=device, progress=progress,
                      desc=f"readout {readout}")
        return model, history, time.perf_counter() - start


def run(settings: MaskingSettings = SETTINGS, out: Path = DATA_DIR, log=print) -> dict:
    """Train every readout at every seed; write results.json."""
    out.mkdir(parents=True, exist_ok=True)
    data = test_set(settings)
    results = {"config": settings.to_dict(), "regenerate": REGENERATE,
               "test": {"lengths": data.lengths.tolist(), "labels": data.labels.tolist(),
                        "flip_pos": data.flip_pos.tolist(), "flip_kind": data.flip_kind.tolist()},
               "runs": {}}
    for readout in settings.readouts:
        for seed in settings.seeds:
            model, history, seconds = train(readout, settings, seed=seed)
            correct = (predict(model, data, settings.batch_size) == data.labels).int()
            results["runs"][f"{readout}/{seed}"] = {
                "readout": readout, "seed": seed, "steps": history.steps,
                "final_loss": round(sum(history.losses[-50:]) / len(history.losses[-50:]), 4),
                "accuracy": round(float(correct.float().mean()), 4),
                "correct": "".join(map(str, correct.tolist())), "seconds": round(seconds, 1)}
            log(f"{readout:>12} seed {seed}: test accuracy {float(correct.float().mean()):.3f} "
                f"({seconds:.1f} s)")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    """The saved results: {"config", "test": {"lengths", "labels", "flip_pos", "flip_kind"},
    "runs": {"last/0": {"readout", "seed", "accuracy", "correct": "0110...", ...}}}."""
    return saved_results(path, REGENERATE)


def main(argv=None) -> None:
    args = experiment_parser(__doc__, DATA_DIR, steps=SETTINGS.steps).parse_args(argv)
    with command_run(args):
        run(SETTINGS.replace(steps=args.steps), args.out)

if __name__ == "__main__":
    main()
