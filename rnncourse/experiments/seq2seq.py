"""Lesson 09's experiments: an encoder-decoder without attention on digit reversal.

    python -m rnncourse.experiments.seq2seq            # trains all, writes data/seq2seq/
    python -m rnncourse.experiments.seq2seq --threads 1

Two experiments, on :func:`rnncourse.data.seq2seq.reversal_pairs` (5-20 digits,
fresh sequences every step, so nothing can be memorised):

* **the bottleneck**: GRU encoder-decoders of ``hidden_sizes`` (the whole source
  must pass through the encoder's last state), ``seeds`` runs each, the same
  steps, batch, optimiser and clipping; greedy exact-match accuracy against the
  source length on a fixed test set, and the parameter count of each size;
* **teacher forcing against free running**: the middle size trained with the
  decoder reading the true previous tokens (``teacher_forcing = 1``) or its own
  argmax (``0``), ``tf_seeds`` runs each; training loss and evaluation curves.

Too long for a lesson's minute, so this script trains once and saves
``results.json`` and the trained model of size ``hidden_size`` and seed
``seeds[0]`` (``reversal_gru<H>.pt``) that the lesson decodes greedily and
with beam search.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncourse.data.seq2seq import DIGITS, collate, reversal_pairs
from rnncourse.data.stream import BatchStream
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.masking import masked_cross_entropy
from rnncourse.paths import data_dir
from rnncourse.seq2seq import Decoder, Encoder, Seq2Seq
from rnncourse.train import History, fit

DATA_DIR = data_dir("seq2seq")
REGENERATE = "python -m rnncourse.experiments.seq2seq"


@dataclass(frozen=True)
class Seq2SeqSettings(Settings):
    kind: str = "GRU"
    min_len: int = 5                     # source lengths, uniform in [min_len, max_len]
    max_len: int = 20
    embed_size: int = 32
    hidden_sizes: tuple = (32, 64, 128)   # the bottleneck experiment's sizes
    hidden_size: int = 128               # the saved model's size and the teacher-forcing runs'
    seeds: tuple = (0, 1, 2)
    batch_size: int = 64
    lr: float = 3e-3                     # Adam
    clip: float = 1.0                    # global gradient-norm clipping
    steps: int = 2000
    eval_every: int = 250
    eval_per_length: int = 10            # per length during training (the curves)
    test_per_length: int = 50            # per length in the final test
    tf_seeds: tuple = (0, 1)
    tf_steps: int = 1000
    seed: int = 0                        # the default seed of a single run


SETTINGS = Seq2SeqSettings()  # what data/seq2seq/ was made with


def build_model(hidden_size: int | None = None, settings: Seq2SeqSettings = SETTINGS,
                seed: int | None = None) -> Seq2Seq:
    """A GRU (or ``settings.kind``) encoder-decoder without attention, seeded."""
    torch.manual_seed(settings.seed if seed is None else seed)
    H = settings.hidden_size if hidden_size is None else hidden_size
    V = len(DIGITS)
    return Seq2Seq(Encoder(V, settings.embed_size, H, settings.kind),
                   Decoder(V, settings.embed_size, H, settings.kind))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_set(per_length: int, settings: Seq2SeqSettings = SETTINGS, seed: int = 12345) -> list:
    """``per_length`` pairs of every length in [min_len, max_len], sorted by length."""
    gen = torch.Generator().manual_seed(seed)
    return [p for L in range(settings.min_len, settings.max_len + 1)
            for p in reversal_pairs(per_length, L, L, gen)]


@torch.no_grad()
def exact_by_length(model: Seq2Seq, pairs: list, beam_width: int = 1, alpha: float = 1.0,
                    device=None) -> dict:
    """{length: fraction of sources whose decoded output equals the target (EOS included)}."""
    model.eval()
    batch = collate(pairs, device)
    limit = int(batch.tgt_mask.sum(1).max()) + 2
    if beam_width == 1:
        out, _ = model.greedy(batch.src, batch.src_lengths, limit)
    else:
        out = model.beam_search(batch.src, batch.src_lengths, beam_width, limit, alpha)
    hits = {}
    for b, (src, tgt) in enumerate(pairs):
        n = len(tgt) + 1
        ok = int(out.lengths[b]) == n and out.tokens[b, :n].tolist() == batch.tgt_out[b, :n].tolist()
        hits.setdefault(len(src), []).append(ok)
    return {L: sum(v) / len(v) for L, v in sorted(hits.items())}


@torch.no_grad()
def exposure_bias(model: Seq2Seq, pairs: list, device=None) -> dict:
    """Where free-running (greedy) outputs go wrong, and what follows the first error.

    For every target position t, ``tf_acc[t]``: the share of sources whose token t is
    right when the decoder reads the true prefix (teacher forcing), and
    ``free_acc[t]``: right in the greedy output. ``first_error``: for each source, the
    position of its first wrong greedy token (-1 if none), and ``length``: its
    target length with EOS. ``after_free`` / ``after_tf``: over the positions after
    each source's first error, the share right in the greedy output / under teacher
    forcing (the same positions, the same sources).
    """
    model.eval()
    batch = collate(pairs, device)
    T = batch.tgt_out.shape[1]
    tf = model(batch.src, batch.src_lengths, batch.tgt_in).argmax(-1)  # (B, T)
    out, _ = model.greedy(batch.src, batch.src_lengths, T)
    free = torch.full_like(batch.tgt_out, -1)
    L = min(T, out.tokens.shape[1])
    free[:, :L] = out.tokens[:, :L]
    mask = batch.tgt_mask
    tf_ok, free_ok = (tf == batch.tgt_out) & mask, (free == batch.tgt_out) & mask  # (B, T)
    wrong = mask & ~free_ok
    first = torch.where(wrong.any(1), wrong.float().argmax(1), torch.full_like(batch.src_lengths, -1))
    t = torch.arange(T, device=mask.device)
    after = mask & (first[:, None] >= 0) & (t[None, :] > first[:, None])  # (B, T)
    n = mask.sum(0).clamp(min=1)
    return {"tf_acc": (tf_ok.sum(0) / n).tolist(), "free_acc": (free_ok.sum(0) / n).tolist(),
            "first_error": first.tolist(), "length": mask.sum(1).tolist(),
            "after_free": float(free_ok[after].float().mean()) if after.any() else float("nan"),
            "after_tf": float(tf_ok[after].float().mean()) if after.any() else float("nan"),
            "after_positions": int(after.sum())}


@torch.no_grad()
def search_errors(model: Seq2Seq, pairs: list, alpha: float = 1.0, device=None) -> dict:
    """Of the sources whose greedy output is wrong, how many are *search* errors (the true
    target has the higher score, log p / n**alpha, so a better search could find it)
    and how many *model* errors (the model prefers its wrong output: no search helps)."""
    model.eval()
    batch = collate(pairs, device)
    logp = torch.log_softmax(model(batch.src, batch.src_lengths, batch.tgt_in), -1)  # (B, T, V)
    n = batch.tgt_mask.sum(1)  # (B,)
    target = (logp.gather(-1, batch.tgt_out.unsqueeze(-1)).squeeze(-1) * batch.tgt_mask).sum(1)
    target = target / n.to(target.dtype) ** alpha
    out, _ = model.greedy(batch.src, batch.src_lengths, batch.tgt_out.shape[1] + 2)
    greedy = out.scores / out.lengths.to(out.scores.dtype) ** alpha
    T = min(out.tokens.shape[1], batch.tgt_out.shape[1])
    right = (out.lengths == n) & ((out.tokens[:, :T] == batch.tgt_out[:, :T]) | ~batch.tgt_mask[:, :T]).all(1)
    wrong = ~right
    return {"wrong": int(wrong.sum()), "search_errors": int((wrong & (target > greedy)).sum()),
            "model_errors": int((wrong & (target <= greedy)).sum())}


def stream(settings: Seq2SeqSettings, seed: int, teacher_forcing: float = 1.0, device=None):
    """Fresh batches as fit wants them: (src, src_lengths, tgt_in, p, (tgt_out, tgt_mask))."""
    def make(gen):
        b = collate(reversal_pairs(settings.batch_size, settings.min_len, settings.max_len, gen), device)
        return b.src, b.src_lengths, b.tgt_in, teacher_forcing, (b.tgt_out, b.tgt_mask)
    return BatchStream(make, seed)


def loss_fn(logits, target) -> torch.Tensor:
    return masked_cross_entropy(logits, *target)


def train(hidden_size: int | None = None, settings: Seq2SeqSettings = SETTINGS, *,
          teacher_forcing: float = 1.0, steps: int | None = None, seed: int | None = None,
          device=None, progress: bool | None = False, threads: int | None = None
          ) -> tuple[Seq2Seq, History, float]:
    """Train one model; return (model, history, seconds). Every ``eval_every`` steps the
    history records, on a fixed evaluation set: ``exact`` (greedy exact match),
    ``tf_loss`` (the teacher-forced loss) and ``tf_token_acc`` (the share of target
    tokens predicted right when the decoder reads the true prefix)."""
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    with torch_threads(threads):
        model = build_model(hidden_size, settings, seed).to(device)
        evalset = test_set(settings.eval_per_length, settings, seed=999)
        eb = collate(evalset, device)

        def evaluate(m):
            logits = m(eb.src, eb.src_lengths, eb.tgt_in)  # (B, T, V)
            right = (logits.argmax(-1) == eb.tgt_out) & eb.tgt_mask
            exact = exact_by_length(m, evalset, device=device)
            return {"exact": sum(exact.values()) / len(exact),
                    "tf_loss": masked_cross_entropy(logits, eb.tgt_out, eb.tgt_mask),
                    "tf_token_acc": right.sum() / eb.tgt_mask.sum()}

        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        start = time.perf_counter()
        history = fit(model, stream(settings, 100 * seed + 7, teacher_forcing, device), loss_fn, opt,
                      steps=steps or settings.steps, clip=settings.clip, eval_fn=evaluate,
                      eval_every=settings.eval_every, device=device, progress=progress,
                      desc=f"H={model.decoder.hidden_size} p={teacher_forcing}")
        return model.eval(), history, time.perf_counter() - start


def _curves(history: History) -> dict:
    out = {"losses": [round(v, 4) for v in history.losses[::10]]}
    for name in ("exact", "tf_loss", "tf_token_acc"):
        steps, values = history.metric(name)
        out["eval_steps"], out[name] = steps, [round(v, 4) for v in values]
    return out


def run(settings: Seq2SeqSettings = SETTINGS, out: Path = DATA_DIR, log=print) -> dict:
    """Both experiments; write results.json and the checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": settings.to_dict(), "regenerate": REGENERATE,
               "bottleneck": {}, "teacher_forcing": {}}
    tests = test_set(settings.test_per_length, settings)
    for H in settings.hidden_sizes:
        for seed in settings.seeds:
            model, history, seconds = train(H, settings, seed=seed)
            exact = exact_by_length(model, tests)
            results["bottleneck"][f"{H}/{seed}"] = {
                "hidden_size": H, "seed": seed, "parameters": count_parameters(model),
                "seconds": round(seconds, 1), "exact_by_length": {str(k): v for k, v in exact.items()},
                **_curves(history)}
            log(f"H={H:>3} seed {seed}: exact {sum(exact.values()) / len(exact):.3f} "
                f"({seconds:.0f} s)")
            if H == settings.hidden_size and seed == settings.seeds[0]:
                torch.save(model.state_dict(), out / f"reversal_gru{H}.pt")
    for p in (1.0, 0.0):
        for seed in settings.tf_seeds:
            model, history, seconds = train(settings.hidden_size, settings, teacher_forcing=p,
                                            steps=settings.tf_steps, seed=seed)
            results["teacher_forcing"][f"{p}/{seed}"] = {
                "teacher_forcing": p, "seed": seed, "seconds": round(seconds, 1), **_curves(history)}
            log(f"teacher forcing {p}, seed {seed}: exact {history.evals[-1]['exact']:.3f} "
                f"({seconds:.0f} s)")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    """The saved results: {"config", "bottleneck": {"<H>/<seed>": ...}, "teacher_forcing":
    {"<p>/<seed>": ...}}."""
    return saved_results(path, REGENERATE)


def load_model(path: Path = DATA_DIR, settings: Seq2SeqSettings = SETTINGS) -> Seq2Seq:
    """The saved reversal model (size ``hidden_size``), in eval mode on the CPU."""
    model = build_model(settings.hidden_size, settings)
    file = Path(path) / f"reversal_gru{settings.hidden_size}.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    args = experiment_parser(__doc__, DATA_DIR, steps=SETTINGS.steps).parse_args(argv)
    with command_run(args):
        run(SETTINGS.replace(steps=args.steps), args.out)

if __name__ == "__main__":
    main()
