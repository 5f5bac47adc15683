"""Lesson 10's experiment: encoder-decoders with and without attention, at the
same budget, on digit reversal (accuracy against length) and on dates to ISO.

    python -m rnncourse.experiments.attention             # trains all, writes data/attention/
    python -m rnncourse.experiments.attention --threads 1
    python -m rnncourse.experiments.attention --threads 1 --jobs 4   # four runs at a time

Models (a bidirectional GRU encoder with ``hidden_size / 2`` units per direction, so
its states and its final state have ``hidden_size`` features; a GRU decoder of
``hidden_size`` units; embeddings of ``embed_size``):

* ``none``: the decoder of lesson 09 (:class:`rnncourse.seq2seq.Decoder`): the
  source reaches it through the encoder's last state only;
* ``none_matched``: the same with ``matched_hidden`` units, chosen so that it has
  at least as many parameters as ``additive``: attention is then credited
  only for what the extra parameters alone do not give;
* ``additive``: :class:`rnncourse.attention.AttentionDecoder` with Bahdanau's
  additive scores, hidden size ``hidden_size``.

Every model trains ``steps`` Adam steps on fresh batches (nothing can be
memorised), with the same batch size, learning rate, clipping and seeds; every
``eval_every`` steps greedy exact match on a fixed set is recorded with the
training seconds so far (evaluation time excluded). At the end each model is
tested on ``test_per_length`` sources of every length. The trained additive
models of seed ``seeds[0]`` are saved for the lesson's heatmaps.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncourse.attention import AttentionDecoder
from rnncourse.data.seq2seq import DATE_TEXT, DIGITS, ISO, collate, date_pairs, reversal_pairs
from rnncourse.data.stream import BatchStream
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.masking import masked_cross_entropy
from rnncourse.paths import data_dir
from rnncourse.seq2seq import Decoder, Encoder, Seq2Seq
from rnncourse.train import History, fit

DATA_DIR = data_dir("attention")
REGENERATE = "python -m rnncourse.experiments.attention"
TASKS = ("reversal", "dates")
MODELS = ("none", "none_matched", "additive")


@dataclass(frozen=True)
class AttentionSettings(Settings):
    min_len: int = 5                 # reversal: source lengths uniform in [min_len, max_len]
    max_len: int = 20
    embed_size: int = 16
    hidden_size: int = 64            # decoder; the encoder has hidden_size / 2 per direction
    matched_hidden: int = 78         # "none_matched": at least the additive model's parameters
    attn_size: int = 64              # A of the additive scores
    seeds: tuple = (0, 1, 2)
    batch_size: int = 64
    lr: float = 3e-3                 # Adam
    clip: float = 1.0                # global gradient-norm clipping
    steps: int = 1000                # reversal, every model
    date_steps: int = 400            # dates, every model
    eval_every: int = 50
    eval_per_length: int = 8         # reversal curves: per length
    date_eval_size: int = 200
    test_per_length: int = 30        # reversal test: per length
    date_test_size: int = 500
    seed: int = 0


SETTINGS = AttentionSettings()  # what data/attention/ was made with


def vocab_sizes(task: str) -> tuple:
    """(source vocabulary size, target vocabulary size)."""
    if task == "reversal":
        return len(DIGITS), len(DIGITS)
    if task == "dates":
        return len(DATE_TEXT), len(ISO)
    raise ValueError(f"task must be one of {TASKS}, got {task!r}")


def build_model(name: str, task: str = "reversal", settings: AttentionSettings = SETTINGS,
                seed: int | None = None) -> Seq2Seq:
    """One of :data:`MODELS` for ``task``, with seeded initial weights."""
    if name not in MODELS:
        raise ValueError(f"model must be one of {MODELS}, got {name!r}")
    torch.manual_seed(settings.seed if seed is None else seed)
    Vs, Vt = vocab_sizes(task)
    E = settings.embed_size
    H = settings.matched_hidden if name == "none_matched" else settings.hidden_size
    encoder = Encoder(Vs, E, H // 2, bidirectional=True)  # states and final state: H features
    if name == "additive":
        return Seq2Seq(encoder, AttentionDecoder(Vt, E, H, H, "additive", settings.attn_size))
    return Seq2Seq(encoder, Decoder(Vt, E, H))


def count_parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def reversal_test(per_length: int, settings: AttentionSettings = SETTINGS, seed: int = 12345) -> list:
    """``per_length`` reversal pairs of every length in [min_len, max_len]."""
    gen = torch.Generator().manual_seed(seed)
    return [p for L in range(settings.min_len, settings.max_len + 1)
            for p in reversal_pairs(per_length, L, L, gen)]


def date_test(n: int, seed: int = 12345) -> list:
    return date_pairs(n, torch.Generator().manual_seed(seed))


@torch.no_grad()
def exact_matches(model: Seq2Seq, pairs: list, device=None) -> list:
    """For each pair: did greedy decoding give the target and then EOS, exactly?"""
    model.eval()
    batch = collate(pairs, device)
    out, _ = model.greedy(batch.src, batch.src_lengths, int(batch.tgt_mask.sum(1).max()) + 2)
    hits = []
    for b, (_, tgt) in enumerate(pairs):
        n = len(tgt) + 1
        hits.append(int(out.lengths[b]) == n and out.tokens[b, :n].tolist() == batch.tgt_out[b, :n].tolist())
    return hits


def by_length(pairs: list, hits: list) -> dict:
    """{source length: exact-match rate}."""
    groups: dict = {}
    for (src, _), ok in zip(pairs, hits):
        groups.setdefault(len(src), []).append(ok)
    return {L: sum(v) / len(v) for L, v in sorted(groups.items())}


def stream(task: str, settings: AttentionSettings, seed: int, device=None) -> BatchStream:
    """Fresh batches as fit wants them: (src, src_lengths, tgt_in, (tgt_out, tgt_mask))."""
    def make(gen):
        if task == "reversal":
            pairs = reversal_pairs(settings.batch_size, settings.min_len, settings.max_len, gen)
        else:
            pairs = date_pairs(settings.batch_size, gen)
        b = collate(pairs, device)
        return b.src, b.src_lengths, b.tgt_in, (b.tgt_out, b.tgt_mask)
    return BatchStream(make, seed)


def loss_fn(logits, target) -> torch.Tensor:
    return masked_cross_entropy(logits, *target)


def train(name: str, settings: AttentionSettings = SETTINGS, *, task: str = "reversal",
          steps: int | None = None, seed: int | None = None, device=None,
          progress: bool | None = False, threads: int | None = None) -> tuple:
    """Train one model; return (model, history, seconds). The history records, every
    ``eval_every`` steps, ``exact`` (greedy exact match on a fixed set) and ``seconds``
    (training time so far, evaluations excluded)."""
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    steps = steps or (settings.steps if task == "reversal" else settings.date_steps)
    with torch_threads(threads):
        model = build_model(name, task, settings, seed).to(device)
        evalset = (reversal_test(settings.eval_per_length, settings, seed=999) if task == "reversal"
                   else date_test(settings.date_eval_size, seed=999))
        clock = {"start": time.perf_counter(), "in_eval": 0.0}

        def evaluate(m):
            t0 = time.perf_counter()
            trained = t0 - clock["start"] - clock["in_eval"]  # training time before this evaluation
            hits = exact_matches(m, evalset, device)
            clock["in_eval"] += time.perf_counter() - t0
            return {"exact": sum(hits) / len(hits), "seconds": trained}

        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        history = fit(model, stream(task, settings, 100 * seed + 7, device), loss_fn, opt, steps=steps,
                      clip=settings.clip, eval_fn=evaluate, eval_every=settings.eval_every, device=device,
                      progress=progress, desc=f"{task} {name} seed {seed}")
        seconds = time.perf_counter() - clock["start"] - clock["in_eval"]
        return model.eval(), history, seconds


def _curve(history: History) -> dict:
    steps, exact = history.metric("exact")
    _, seconds = history.metric("seconds")
    return {"eval_steps": steps, "eval_exact": [round(v, 4) for v in exact],
            "eval_seconds": [round(v, 2) for v in seconds], "losses": [round(v, 4) for v in history.losses[::10]]}


def _job(task: str, name: str, seed: int, saved: dict, threads: int | None) -> tuple:
    """One run: train, test; (key, entry, state_dict of a model the lesson loads, or None)."""
    settings = AttentionSettings.from_dict(saved)
    model, history, seconds = train(name, settings, task=task, seed=seed, threads=threads)
    with torch_threads(threads):
        tests = (reversal_test(settings.test_per_length, settings) if task == "reversal"
                 else date_test(settings.date_test_size))
        hits = exact_matches(model, tests)
    entry = {"task": task, "model": name, "seed": seed, "parameters": count_parameters(model),
             "seconds": round(seconds, 1), "exact": round(sum(hits) / len(hits), 4), **_curve(history)}
    if task == "reversal":
        entry["exact_by_length"] = {str(k): round(v, 4) for k, v in by_length(tests, hits).items()}
    keep = name == "additive" and seed == settings.seeds[0]
    return f"{task}/{name}/{seed}", entry, (model.state_dict() if keep else None)


def run(settings: AttentionSettings = SETTINGS, out: Path = DATA_DIR, log=print, jobs: int = 1,
        threads: int | None = None) -> dict:
    """Every model on both tasks and every seed (``jobs`` runs at a time, each seeded on its
    own, so the results do not depend on ``jobs``); write results.json and the checkpoints."""
    out.mkdir(parents=True, exist_ok=True)
    todo = [(task, name, seed) for task in TASKS
            for name in (MODELS if task == "reversal" else ("none", "additive")) for seed in settings.seeds]
    results = {"config": settings.to_dict(), "regenerate": REGENERATE, "runs": {}}

    def record(key, entry, state):
        results["runs"][key] = entry
        log(f"{key:28}: exact {entry['exact']:.3f}, {entry['parameters']} parameters, "
            f"{entry['seconds']:.0f} s of training")
        if state is not None:
            torch.save(state, out / f"{entry['task']}_additive.pt")

    if jobs <= 1:
        for task, name, seed in todo:
            record(*_job(task, name, seed, settings.to_dict(), threads))
    else:
        from concurrent.futures import ProcessPoolExecutor
        with ProcessPoolExecutor(jobs) as pool:
            futures = [pool.submit(_job, *job, settings.to_dict(), threads) for job in todo]
            for f in futures:
                record(*f.result())
    results["runs"] = {k: results["runs"][k] for k in sorted(results["runs"])}
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    """The saved results: {"config", "runs": {"<task>/<model>/<seed>": {...}}}."""
    return saved_results(path, REGENERATE)


def load_model(task: str = "reversal", path: Path = DATA_DIR, settings: AttentionSettings = SETTINGS) -> Seq2Seq:
    """The saved additive-attention model of ``task``, in eval mode on the CPU."""
    model = build_model("additive", task, settings)
    file = Path(path) / f"{task}_additive.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, DATA_DIR)
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (processes)")
    args = parser.parse_args(argv)
    with command_run(args):
        run(SETTINGS, args.out, jobs=args.jobs, threads=args.threads)

if __name__ == "__main__":
    main()
