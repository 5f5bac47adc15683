"""Lesson 05's experiment: RNN vs LSTM vs GRU on a long-range task, accuracy
against sequence length.

    python -m rnncourse.experiments.longrange            # trains all, writes data/longrange/
    python -m rnncourse.experiments.longrange --threads 1

The task is :mod:`rnncourse.data.recall`: name the first symbol of a sequence
after ``T - 1`` random distractors (4 symbols, chance 25%). Each model (one
recurrent layer, hidden 32, a linear head on the last state) trains for the same
number of steps at each length, with the same seed, batch, optimiser and
clipping; an evaluation on fresh sequences every ``eval_every`` steps gives a
learning curve. Twelve short runs take a few minutes of CPU: too long for the
lesson, so this script trains once and saves ``results.json`` (a few KB) and
the trained GRU at one length (``gru_T<T>.pt``) for the lesson to look inside.

The gated models start with their "keep" gate biased open (``KEEP_BIAS``): the
LSTM's forget gate and the GRU's update gate z. With PyTorch's default zero
bias both gates start near 0.5, so the state halves at every step, and neither
gated model learned this task at T = 40 in 800 steps in our trials (the vanilla
RNN did, slowly). The bias is the usual practice and costs no parameters.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from rnncourse.data.recall import recall_batch, vocab_size
from rnncourse.train import fit

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "longrange"
KINDS = ("RNN", "LSTM", "GRU")
CONFIG = {"lengths": [10, 25, 50, 100, 200], "seeds": [0, 1, 2], "hidden_size": 32,
          "num_symbols": 4, "num_distractors": 4, "batch_size": 64, "lr": 1e-2, "clip": 1.0,
          "steps": 500, "eval_every": 50, "eval_size": 512, "seed": 0, "keep_bias": 3.0,
          "checkpoint_T": 100}
REGENERATE = "python -m rnncourse.experiments.longrange"


class RecallModel(torch.nn.Module):
    """One torch.nn recurrent layer read by a linear head at the last step:
    one-hot (B, T, V) -> logits (B, num_symbols)."""

    def __init__(self, kind: str, hidden_size: int = 32, num_symbols: int = 4,
                 num_distractors: int = 4, keep_bias: float = 0.0):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.rnn = getattr(torch.nn, kind)(vocab_size(num_symbols, num_distractors), hidden_size,
                                           batch_first=True)
        self.head = torch.nn.Linear(hidden_size, num_symbols)
        H = hidden_size
        with torch.no_grad():  # rows H:2H are f in the LSTM's (i, f, g, o), z in the GRU's (r, z, n)
            if kind in ("LSTM", "GRU"):
                self.rnn.bias_ih_l0[H:2 * H] += keep_bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1])  # (B, num_symbols): the answer after the last step


def build_model(kind: str, cfg: dict = CONFIG, seed: int | None = None) -> RecallModel:
    """The model with seeded initial weights (PyTorch's initialisation, keep-gate bias added)."""
    torch.manual_seed(cfg["seed"] if seed is None else seed)
    return RecallModel(kind, cfg["hidden_size"], cfg["num_symbols"], cfg["num_distractors"],
                       cfg["keep_bias"])


def _stream(T: int, cfg: dict, seed: int, device):
    gen = torch.Generator().manual_seed(seed)
    while True:  # fit takes exactly `steps` batches from it
        yield recall_batch(cfg["batch_size"], T, cfg["num_symbols"], cfg["num_distractors"], gen, device)


def train_one(kind: str, T: int, cfg: dict = CONFIG, steps: int | None = None, device=None,
              progress: bool | None = False, seed: int | None = None, threads: int | None = None):
    """Train one model at length T; return (model, history) with the accuracy
    on fresh sequences every ``eval_every`` steps in ``history.metric("accuracy")``.

    ``threads`` sets torch's CPU threads for this run only. These models are tiny:
    on a busy 2-core machine two threads waiting for each other made a run 20
    times slower than one thread (measured for this lesson).
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(kind, T, cfg, steps, device, progress, seed)
    finally:
        torch.set_num_threads(before)


def _train(kind, T, cfg, steps, device, progress, seed):
    device = torch.device("cpu") if device is None else torch.device(device)
    seed = cfg["seed"] if seed is None else seed
    model = build_model(kind, cfg, seed).to(device)
    x_eval, y_eval = recall_batch(cfg["eval_size"], T, cfg["num_symbols"], cfg["num_distractors"],
                                  1000 + T, device)

    def accuracy(m):
        return {"accuracy": (m(x_eval).argmax(dim=1) == y_eval).float().mean()}

    opt = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    history = fit(model, _stream(T, cfg, 100 * seed + T, device), torch.nn.functional.cross_entropy,
                  opt, steps=steps or cfg["steps"], clip=cfg["clip"], eval_fn=accuracy,
                  eval_every=cfg["eval_every"], device=device, progress=progress,
                  desc=f"{kind} T={T}")
    return model, history


def run(cfg: dict = CONFIG, out: Path = DATA_DIR, log=print) -> dict:
    """Train every kind at every length; write results.json and the GRU checkpoint."""
    out.mkdir(parents=True, exist_ok=True)
    results = {"config": cfg, "regenerate": REGENERATE, "runs": {}}
    for kind in KINDS:
        for T in cfg["lengths"]:
            for seed in cfg["seeds"]:
                start = time.perf_counter()
                model, history = train_one(kind, T, cfg, seed=seed)
                steps, acc = history.metric("accuracy")
                seconds = time.perf_counter() - start
                results["runs"][f"{kind}/{T}/{seed}"] = {
                    "kind": kind, "T": T, "seed": seed, "steps": steps,
                    "accuracy": [round(a, 4) for a in acc], "seconds": round(seconds, 1)}
                log(f"{kind:>4} T={T:>3} seed {seed}: accuracy {acc[-1]:.3f} after {steps[-1]} "
                    f"steps ({seconds:.1f} s)")
                if kind == "GRU" and T == cfg["checkpoint_T"] and seed == cfg["seeds"][0]:
                    torch.save(model.state_dict(), out / f"gru_T{T}.pt")
    (out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    return results


def load_results(path: Path = DATA_DIR) -> dict:
    """The saved results: {"config", "runs": {"GRU/50/0": {"steps", "accuracy", ...}}}
    with one run per model, length and seed."""
    file = Path(path) / "results.json"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    return json.loads(file.read_text())


def load_gru(path: Path = DATA_DIR, cfg: dict = CONFIG) -> RecallModel:
    """The GRU trained at ``checkpoint_T``, in eval mode on the CPU."""
    model = RecallModel("GRU", cfg["hidden_size"], cfg["num_symbols"], cfg["num_distractors"])
    file = Path(path) / f"gru_T{cfg['checkpoint_T']}.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--steps", type=int, default=CONFIG["steps"])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    run({**CONFIG, "steps": args.steps}, args.out)
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
