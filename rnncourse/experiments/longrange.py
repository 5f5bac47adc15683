"""Lesson 05's experiment: RNN vs LSTM vs GRU on a long-range task, accuracy
against sequence length.

    python -m rnncourse.experiments.longrange            # trains all, writes data/longrange/
    python -m rnncourse.experiments.longrange --threads 1

The task is :mod:`rnncourse.data.recall`: name the first symbol of a sequence
after ``T - 1`` random distractors (4 symbols, chance 25%). Each model (one
recurrent layer, hidden 32, a linear head on the last state) trains for the same
number of steps at each length, with the same seed, batch, optimiser and
clipping; an evaluation on fresh sequences every ``eval_every`` steps gives a
learning curve. The 45 short runs took 130 s on one CPU thread (load average
0.4; longer on a busy machine): too long for the lesson, so this script trains once and saves ``results.json`` (a few KB) and
the trained GRU at one length (``gru_T<T>.pt``) for the lesson to look inside.

The gated models start with the same gate-bias *intent*: keep the state and do
not write distractors into it. The GRU's update gate z does both at once
(``h = (1 - z) n + z h``: ``keep_bias`` on z keeps the old state and closes the
write); the LSTM splits them over two gates, so it gets ``keep_bias`` on its
forget gate f **and** ``write_bias`` (negative) on its input gate i. With only
the forget bias raised, the LSTM's input gate stays near 0.5 and writes every
distractor into the cell: the first saved runs did that and the LSTM stayed at
chance for every seed at T = 100 and 200, an initialisation artefact rather
than an architecture result. With PyTorch's default zero biases both gated
models start with their state halving at every step, and neither learned this
task at T = 40 in 800 steps in our trials (the vanilla RNN did, slowly). The
biases are the usual practice and cost no parameters.

``python -m rnncourse.experiments.longrange --kinds LSTM`` retrains one kind
and replaces only its runs in results.json (the others depend only on their own
seeds, so they stay valid).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncourse.data.recall import recall_batch, recall_stream, vocab_size
from rnncourse.experiments.settings import (
    Settings, command_run, experiment_parser, saved_results, torch_threads,
)
from rnncourse.init import add_gate_bias
from rnncourse.kinds import KINDS, kind_of
from rnncourse.paths import data_dir
from rnncourse.train import History, fit

DATA_DIR = data_dir("longrange")  # data/longrange in a checkout, the installed copy otherwise
REGENERATE = "python -m rnncourse.experiments.longrange"
KEEP_GATE = {"LSTM": "f", "GRU": "z"}  # the gate whose opening keeps the state
WRITE_GATE = {"LSTM": "i"}  # a separate gate that writes into the state (the GRU's is 1 - z)
KIND_ONLY = {"write_bias": ("LSTM",)}  # settings that only some kinds read


@dataclass(frozen=True)
class LongRangeSettings(Settings):
    lengths: tuple = (10, 25, 50, 100, 200)  # sequence lengths T compared
    seeds: tuple = (0, 1, 2)                 # one run per kind, length and seed
    hidden_size: int = 32
    num_symbols: int = 4                     # signals: chance is 1 / num_symbols
    num_distractors: int = 4
    batch_size: int = 64
    lr: float = 1e-2                         # Adam
    clip: float = 1.0                        # global gradient-norm clipping
    steps: int = 500
    eval_every: int = 50
    eval_size: int = 512
    seed: int = 0                            # the default seed of a single run
    keep_bias: float = 3.0                   # added to the keep gate's b_ih (see the module doc)
    write_bias: float = -3.0                 # added to the LSTM input gate's b_ih: write little at first
    checkpoint_T: int = 100                  # the length whose GRU (seed seeds[0]) is saved


SETTINGS = LongRangeSettings()  # what data/longrange/ was made with


class RecallModel(torch.nn.Module):
    """One torch.nn recurrent layer read by a linear head at the last step:
    one-hot (B, T, V) -> logits (B, num_symbols)."""

    def __init__(self, kind: str, hidden_size: int = 32, num_symbols: int = 4,
                 num_distractors: int = 4, keep_bias: float = 0.0, write_bias: float = 0.0):
        super().__init__()
        self.kind = kind_of(kind)
        self.rnn = getattr(torch.nn, self.kind)(vocab_size(num_symbols, num_distractors), hidden_size,
                                                batch_first=True)
        self.head = torch.nn.Linear(hidden_size, num_symbols)
        if self.kind in KEEP_GATE:  # the LSTM's forget gate f, the GRU's update gate z
            add_gate_bias(self.rnn, KEEP_GATE[self.kind], keep_bias)
        if self.kind in WRITE_GATE:  # the LSTM's input gate i: the same intent as the GRU's 1 - z
            add_gate_bias(self.rnn, WRITE_GATE[self.kind], write_bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, num_symbols): the answer after the last step


def build_model(kind: str, settings: LongRangeSettings = SETTINGS, seed: int | None = None) -> RecallModel:
    """The model with seeded initial weights (PyTorch's initialisation, keep-gate bias added)."""
    torch.manual_seed(settings.seed if seed is None else seed)
    return RecallModel(kind, settings.hidden_size, settings.num_symbols, settings.num_distractors,
                       settings.keep_bias, settings.write_bias)


def train(kind: str, settings: LongRangeSettings = SETTINGS, *, T: int | None = None,
          steps: int | None = None, seed: int | None = None, device=None, progress: bool | None = False,
          threads: int | None = None) -> tuple[RecallModel, History, float]:
    """Train one model at length T (default ``checkpoint_T``); return (model, history, seconds)
    with the accuracy on fresh sequences every ``eval_every`` steps in
    ``history.metric("accuracy")``. ``threads`` sets torch's CPU threads for this run only.
    """
    T = settings.checkpoint_T if T is None else T
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    with torch_threads(threads):
        model = build_model(kind, settings, seed).to(device)
        x_eval, y_eval = recall_batch(settings.eval_size, T, settings.num_symbols,
                                      settings.num_distractors, 1000 + T, device)

        def accuracy(m):
            return {"accuracy": (m(x_eval).argmax(dim=1) == y_eval).float().mean()}

        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        batches = recall_stream(settings.batch_size, T, settings.num_symbols, settings.num_distractors,
                                seed=100 * seed + T, device=device)
        start = time.perf_counter()
        history = fit(model, batches, torch.nn.functional.cross_entropy, opt,
                      steps=steps or settings.steps, clip=settings.clip, eval_fn=accuracy,
                      eval_every=settings.eval_every, device=device, progress=progress,
                      desc=f"{model.kind} T={T}")
        return model, history, time.perf_counter() - start


def run(settings: LongRangeSettings = SETTINGS, out: Path = DATA_DIR, log=print,
        kinds: tuple = KINDS) -> dict:
    """Train ``kinds`` at every length; write results.json and the GRU checkpoint.

    With fewer kinds than all, the other kinds' saved runs are kept as they are."""
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": settings.to_dict(), "regenerate": REGENERATE, "runs": {}}
    if set(kinds) != set(KINDS):
        saved = load_results(out)
        changed = {k for k, v in settings.to_dict().items() if saved["config"].get(k) != v}
        if not all(set(KIND_ONLY.get(k, ())) and set(KIND_ONLY[k]) <= set(kinds) for k in changed):
            raise ValueError(f"settings {sorted(changed)} differ from the saved runs' and affect the kinds "
                             f"not retrained; retrain every kind")
        results["runs"] = {k: v for k, v in saved["runs"].items() if v["kind"] not in kinds}
    for kind in kinds:
        for T in settings.lengths:
            for seed in settings.seeds:
                start = time.perf_counter()
                model, history, _ = train(kind, settings, T=T, seed=seed)
                steps, acc = history.metric("accuracy")
                seconds = time.perf_counter() - start
                results["runs"][f"{kind}/{T}/{seed}"] = {
                    "kind": kind, "T": T, "seed": seed, "steps": steps,
                    "accuracy": [round(a, 4) for a in acc], "seconds": round(seconds, 1)}
                log(f"{kind:>4} T={T:>3} seed {seed}: accuracy {acc[-1]:.3f} after {steps[-1]} "
                    f"steps ({seconds:.1f} s)")
                if kind == "GRU" and T == settings.checkpoint_T and seed == settings.seeds[0]:
                    torch.save(model.state_dict(), out / f"gru_T{T}.pt")
    order = {k: i for i, k in enumerate(f"{kind}/{T}/{seed}" for kind in KINDS for T in settings.lengths
                                         for seed in settings.seeds)}
    results["runs"] = dict(sorted(results["runs"].items(), key=lambda kv: order[kv[0]]))
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    """The saved results: {"config", "runs": {"GRU/50/0": {"steps", "accuracy", ...}}}
    with one run per model, length and seed. ``results["config"]`` is the settings
    as saved (a dict); ``LongRangeSettings.from_dict`` turns it back into settings."""
    return saved_results(path, REGENERATE)


def load_gru(path: Path = DATA_DIR, settings: LongRangeSettings = SETTINGS) -> RecallModel:
    """The GRU trained at ``checkpoint_T``, in eval mode on the CPU."""
    model = RecallModel("GRU", settings.hidden_size, settings.num_symbols, settings.num_distractors)
    file = Path(path) / f"gru_T{settings.checkpoint_T}.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, DATA_DIR, steps=SETTINGS.steps)
    parser.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS),
                        help="retrain only these kinds; the others' saved runs are kept")
    args = parser.parse_args(argv)
    with command_run(args):
        run(SETTINGS.replace(steps=args.steps), args.out, kinds=tuple(args.kinds))

if __name__ == "__main__":
    main()
