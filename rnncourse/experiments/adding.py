"""Lesson 03's experiment: a vanilla RNN and an LSTM on the adding problem,
trained for the same number of steps with the same budget of everything else.

    python -m rnncourse.experiments.adding            # trains both, writes data/adding/*.pt
    python -m rnncourse.experiments.adding --threads 1 --steps 4000

Measured for the course (issue #4): at T=100, hidden 64, batch 128, Adam 1e-3,
clipping at 1, 4,000 steps separate them cleanly (3/3 seeds): the LSTM gets well
below the constant-answer MSE of 1/6, the vanilla RNN stays near it. That is
minutes of CPU, too long for the lesson, so this script trains once and saves
each model's weights, its training losses and its evaluation curve (a few
dozen KB); the lesson plots what it loads. Seeded: the same command gives the
same curves up to floating-point summation order (thread count, device).
"""
from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from rnncourse.data.adding import CONSTANT_MSE, AddingStream, adding_batch
from rnncourse.train import History, fit

DATA_DIR = Path(__file__).resolve().parents[2] / "data" / "adding"
CONFIG = {"T": 100, "hidden_size": 64, "batch_size": 128, "lr": 1e-3, "clip": 1.0,
          "steps": 4000, "seed": 0, "eval_every": 100, "eval_size": 1000, "eval_seed": 1234}
KINDS = ("rnn", "lstm")
REGENERATE = "python -m rnncourse.experiments.adding"


class AddingRegressor(torch.nn.Module):
    """A recurrent layer read by a linear head at the last step: (B, T, 2) -> (B,)."""

    def __init__(self, kind: str = "lstm", hidden_size: int = 64):
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        layer = torch.nn.LSTM if kind == "lstm" else torch.nn.RNN
        self.rnn = layer(2, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1]).squeeze(-1)  # (B,): the answer after the last step


def build_model(kind: str, hidden_size: int = CONFIG["hidden_size"], seed: int = CONFIG["seed"]):
    """The model with seeded initial weights (PyTorch's default initialisation)."""
    torch.manual_seed(seed)
    return AddingRegressor(kind, hidden_size)


def eval_set(T: int = CONFIG["T"], size: int = CONFIG["eval_size"], seed: int = CONFIG["eval_seed"]):
    """A fixed batch of fresh sequences, never seen in training (its own seed)."""
    return adding_batch(size, T, seed)


def mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of ``model`` on (x, y), on the model's device, without gradients."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        err = float(torch.nn.functional.mse_loss(model(x.to(device)), y.to(device)))
    model.train(was_training)
    return err


def train(kind: str, steps: int = CONFIG["steps"], T: int = CONFIG["T"], config: dict | None = None,
          device=None, progress: bool | None = None) -> tuple[torch.nn.Module, History, float]:
    """Train one model through :func:`rnncourse.train.fit`; return (model, history, seconds)."""
    cfg = {**CONFIG, **(config or {}), "T": T, "steps": steps}
    model = build_model(kind, cfg["hidden_size"], cfg["seed"])
    if device is not None:
        model.to(device)
    x_eval, y_eval = eval_set(T, cfg["eval_size"], cfg["eval_seed"])
    batches = AddingStream(cfg["batch_size"], T, seed=cfg["seed"] + 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg["lr"])
    start = time.perf_counter()
    history = fit(model, batches, torch.nn.functional.mse_loss, optimizer, steps=steps,
                  clip=cfg["clip"], eval_fn=lambda m: {"mse": mse(m, x_eval, y_eval)},
                  eval_every=min(cfg["eval_every"], steps), monitor="mse", device=device,
                  progress=progress, desc=f"{kind.upper()} on the adding problem, T={T}")
    return model, history, time.perf_counter() - start


def save(path: Path, model: AddingRegressor, history: History, seconds: float, config: dict) -> None:
    """Weights, curves and settings in one small file (float32 tensors, plain types)."""
    steps, values = history.metric("mse")
    torch.save({
        "kind": model.kind,
        "config": dict(config),
        "state_dict": {k: v.detach().cpu().float() for k, v in model.state_dict().items()},
        "losses": torch.tensor(history.losses, dtype=torch.float32),  # every training step
        "eval_steps": torch.tensor(steps, dtype=torch.int64),
        "eval_mse": torch.tensor(values, dtype=torch.float32),
        "seconds": float(seconds),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
    }, path)


def load(kind: str, folder: Path | str = DATA_DIR, device=None) -> tuple[AddingRegressor, dict]:
    """The saved model (in eval mode) and its record (config, losses, eval curve, seconds)."""
    path = Path(folder) / f"{kind}.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; regenerate it with `{REGENERATE}`")
    record = torch.load(path, map_location="cpu", weights_only=True)
    model = AddingRegressor(record["kind"], record["config"]["hidden_size"])
    model.load_state_dict(record["state_dict"])
    if device is not None:
        model.to(device)
    return model.eval(), record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=CONFIG["steps"])
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS), choices=KINDS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    config = {**CONFIG, "steps": args.steps}
    for kind in args.kinds:
        model, history, seconds = train(kind, args.steps, config["T"], config, progress=True)
        save(args.out / f"{kind}.pt", model, history, seconds, config)
        print(f"{kind}: eval MSE {history.evals[-1]['mse']:.4f} after {history.steps} steps "
              f"in {seconds:.0f} s (constant answer: {CONSTANT_MSE:.4f}) -> {args.out / f'{kind}.pt'}")



def curves_figure(records: dict, constant: float = CONSTANT_MSE, smooth: int = 50):
    """Training loss (a running mean over ``smooth`` steps) and evaluation MSE of each
    record, against the step, with the constant-answer MSE as a dashed line."""
    import matplotlib.pyplot as plt
    import numpy as np
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    for k, (label, rec) in enumerate(records.items()):
        losses = np.asarray(rec["losses"], dtype=float)
        w = min(smooth, len(losses))
        mean = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax1.plot(np.arange(w, len(losses) + 1), mean, color=f"C{k}", label=label)
        ax2.plot(np.asarray(rec["eval_steps"]), np.asarray(rec["eval_mse"]), "-o", ms=2,
                 color=f"C{k}", label=label)
    for ax, title in ((ax1, f"Training loss (mean of {smooth} steps)"),
                      (ax2, "MSE on 1,000 held-out sequences")):
        ax.axhline(constant, color="k", ls="--", lw=1, label="always answer 1 (MSE 1/6)")
        ax.set_yscale("log")
        ax.set_xlabel("training step")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    ax1.set_ylabel("mean squared error (log scale)")
    fig.tight_layout()
    return fig


if __name__ == "__main__":
    main()
