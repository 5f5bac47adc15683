"""Lesson 07's second experiment: what the common BiLSTM tagger pays for counting
the padding, on lesson 06's tagging language.

    python -m rnncourse.experiments.masking_tagger      # trains all, writes data/masking/tagger.json

The common tagger of tutorials and quick scripts is ``nn.Embedding(V, E,
padding_idx=0)``, a bidirectional ``nn.LSTM`` of ``hidden // 2`` units per
direction run on the padded batch, a linear layer to the tags plus a PAD tag,
and ``nn.CrossEntropyLoss()`` over *every* position, the padded ones labelled
PAD. Three ways to train the same network (same parameters, seed, batches,
optimiser and budget):

* ``every_position``: the common tagger, as above;
* ``masked``: the loss averaged over the real tokens only
  (:func:`rnncourse.masking.masked_cross_entropy`), the LSTM still run on the
  padded batch, so its backward direction starts on the padding;
* ``masked_packed``: the masked loss and a packed batch, so each sentence's
  backward direction starts at its own last token.

Each is scored on a fixed test set in the way it was trained, by the accuracy
over real tokens (what a tagger is for) and, for the common tagger, also as its
own loss reports it (over every position). The sentences are lesson 06's
language with lengths spread from 2 to 64, so a batch is about half padding.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncourse import masking
from rnncourse.data.stream import BatchStream
from rnncourse.data.tagging import PAD_ID, TaggingLanguage, expected_ceiling, num_tags, tagging_batch, vocab_size
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.paths import data_dir
from rnncourse.train import fit

DATA_DIR = data_dir("masking")
REGENERATE = "python -m rnncourse.experiments.masking_tagger"
VARIANTS = ("every_position", "masked", "masked_packed")
VARIANT_NAMES = {"every_position": "loss over every position (common)", "masked": "masked loss",
                 "masked_packed": "masked loss + packing"}


@dataclass(frozen=True)
class TaggerSettings(Settings):
    variants: tuple = VARIANTS
    seeds: tuple = (0, 1, 2)
    min_len: int = 2
    max_len: int = 64
    embed_size: int = 16
    hidden_size: int = 32       # hidden // 2 = 16 units per direction
    batch_size: int = 32
    lr: float = 5e-3
    steps: int = 300
    eval_every: int = 20        # the learning curve's resolution (saved runs)
    test_size: int = 512
    test_seed: int = 4321
    seed: int = 0

    @property
    def language(self) -> TaggingLanguage:
        return TaggingLanguage(min_len=self.min_len, max_len=self.max_len)

    @property
    def pad_tag(self) -> int:
        """The extra class the common tagger predicts at padded positions."""
        return num_tags()


SETTINGS = TaggerSettings()


class BiLSTMTagger(torch.nn.Module):
    """tokens (B, T), lengths (B,) -> tag logits (B, T, num_tags + 1); the last class is PAD."""

    def __init__(self, embed_size: int = 16, hidden_size: int = 32, packed: bool = False):
        super().__init__()
        self.packed = packed
        self.embed = torch.nn.Embedding(vocab_size(), embed_size, padding_idx=PAD_ID)
        self.rnn = torch.nn.LSTM(embed_size, hidden_size // 2, batch_first=True, bidirectional=True)
        self.head = torch.nn.Linear(hidden_size, num_tags() + 1)

    def forward(self, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (B, T, E)
        if self.packed:
            packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
            out, _ = self.rnn(packed)
            out, _ = pad_packed_sequence(out, batch_first=True, total_length=tokens.shape[1])  # (B, T, H)
        else:
            out, _ = self.rnn(x)  # (B, T, H): the backward direction starts on the padding
        return self.head(out)  # (B, T, num_tags + 1)


def build_model(variant: str, settings: TaggerSettings = SETTINGS, seed: int | None = None) -> BiLSTMTagger:
    """The same initial weights for every variant at one seed (packing adds no parameters)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
    torch.manual_seed(settings.seed if seed is None else seed)
    return BiLSTMTagger(settings.embed_size, settings.hidden_size, packed=variant == "masked_packed")


def every_position_loss(logits, tags, mask, pad_tag: int):
    """The common loss: nn.CrossEntropyLoss over all B*T positions, padding labelled PAD."""
    targets = torch.where(mask, tags, torch.full_like(tags, pad_tag))  # (B, T)
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


def scores(model, batch, pad_tag: int) -> dict:
    """Accuracy over real tokens, and loss and accuracy as the common tagger reports them."""
    with torch.no_grad():
        logits = model(batch.tokens, batch.lengths)  # (B, T, C)
    pred = logits.argmax(-1)
    real = batch.mask
    targets = torch.where(real, batch.tags, torch.full_like(batch.tags, pad_tag))
    return {"accuracy": float((pred == batch.tags)[real].float().mean()),
            "loss_real": float(masking.masked_cross_entropy(logits, batch.tags, real)),
            "accuracy_all_positions": float((pred == targets).float().mean()),
            "loss_all_positions": float(every_position_loss(logits, batch.tags, real, pad_tag)),
            "padding_fraction": float(1 - real.float().mean())}


def _batches(settings: TaggerSettings, seed: int, device) -> BatchStream:
    """Fresh batches ``(tokens, lengths, (tags, mask))``: fit calls model(tokens, lengths)
    and loss(logits, (tags, mask))."""
    def make(gen):
        b = tagging_batch(settings.batch_size, gen, settings.language, device=device)
        return b.tokens, b.lengths, (b.tags, b.mask)
    return BatchStream(make, seed)


def loss_for(variant: str, settings: TaggerSettings = SETTINGS, masked=None):
    """The training loss of ``variant`` as fit calls it: loss(logits, (tags, mask)).
    ``masked(logits, tags, mask)`` replaces the package's masked loss (the lesson
    passes the learner's own)."""
    masked = masked or masking.masked_cross_entropy
    if variant == "every_position":
        return lambda logits, target: every_position_loss(logits, *target, settings.pad_tag)
    return lambda logits, target: masked(logits, *target)


def train(variant: str, settings: TaggerSettings = SETTINGS, *, steps: int | None = None,
          seed: int | None = None, device=None, loss_fn=None, eval_every: int | None = None,
          progress: bool | None = False, threads: int | None = None) -> tuple:
    """Train one tagger with ``fit``; return (model, history, seconds). With ``eval_every``,
    ``history.metric("accuracy")`` is the real-token accuracy on the test set as training goes."""
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    with torch_threads(threads):
        model = build_model(variant, settings, seed).to(device)
        batch = test_batch(settings, device)
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        start = time.perf_counter()
        history = fit(model, _batches(settings, 2000 + seed, device), loss_for(variant, settings, loss_fn),
                      opt, steps=steps or settings.steps, eval_every=eval_every or steps or settings.steps,
                      eval_fn=lambda m: scores(m, batch, settings.pad_tag), device=device,
                      progress=progress, desc=f"tagger {variant}")
        return model.eval(), history, time.perf_counter() - start


def test_batch(settings: TaggerSettings = SETTINGS, device=None):
    return tagging_batch(settings.test_size, settings.test_seed, settings.language, device=device)


def run(settings: TaggerSettings = SETTINGS, out: Path = DATA_DIR, log=print) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    batch = test_batch(settings)
    results = {"config": settings.to_dict(), "regenerate": REGENERATE,
               "ceiling": {"test_set": batch.ceiling, "language": expected_ceiling(settings.language)},
               "runs": {}}
    for variant in settings.variants:
        for seed in settings.seeds:
            model, history, seconds = train(variant, settings, seed=seed, eval_every=settings.eval_every)
            s = {k: round(v, 4) for k, v in scores(model, batch, settings.pad_tag).items()}
            curves = {name: [round(a, 4) for a in history.metric(name)[1]] for name in s}
            results["runs"][f"{variant}/{seed}"] = {
                "variant": variant, "seed": seed, **s, "steps": history.metric("accuracy")[0],
                "curves": curves, "seconds": round(seconds, 1)}
            log(f"{variant:>15} seed {seed}: real-token accuracy {s['accuracy']:.3f} "
                f"(over every position {s['accuracy_all_positions']:.3f}) {seconds:.1f} s")
    (out / "tagger.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    return saved_results(path, REGENERATE, 'tagger.json')


def main(argv=None) -> None:
    args = experiment_parser(__doc__, DATA_DIR).parse_args(argv)
    with command_run(args):
        run(SETTINGS, args.out)

if __name__ == "__main__":
    main()
