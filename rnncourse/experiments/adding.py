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
from dataclasses import dataclass
from pathlib import Path

import torch

from rnncourse.data.adding import CONSTANT_MSE, AddingStream, adding_batch
from rnncourse.experiments.settings import Settings, torch_threads
from rnncourse.kinds import kind_of
from rnncourse.paths import data_dir
from rnncourse.train import History, fit

DATA_DIR = data_dir("adding")  # data/adding in a checkout, the installed copy otherwise
SAVED = ("RNN", "LSTM")  # the kinds with a checkpoint in data/adding/ (<kind in lower case>.pt)
REGENERATE = "python -m rnncourse.experiments.adding"


@dataclass(frozen=True)
class AddingSettings(Settings):
    T: int = 100             # sequence length (steps)
    hidden_size: int = 64
    batch_size: int = 128
    lr: float = 1e-3         # Adam
    clip: float = 1.0        # global gradient-norm clipping
    steps: int = 4000
    seed: int = 0            # the model's initial weights; the training stream uses seed + 1
    eval_every: int = 100
    eval_size: int = 1000    # held-out sequences, drawn from eval_seed
    eval_seed: int = 1234


SETTINGS = AddingSettings()  # what data/adding/*.pt were trained with


class AddingRegressor(torch.nn.Module):
    """A recurrent layer read by a linear head at the last step: (B, T, 2) -> (B,)."""

    def __init__(self, kind: str = "LSTM", hidden_size: int = 64):
        super().__init__()
        self.kind = kind_of(kind)
        self.rnn = getattr(torch.nn, self.kind)(2, hidden_size, batch_first=True)
        self.head = torch.nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(x)  # (B, T, H)
        return self.head(outputs[:, -1]).squeeze(-1)  # (B,): the answer after the last step


def build_model(kind: str, settings: AddingSettings = SETTINGS, seed: int | None = None) -> AddingRegressor:
    """The model with seeded initial weights (PyTorch's default initialisation)."""
    torch.manual_seed(settings.seed if seed is None else seed)
    return AddingRegressor(kind, settings.hidden_size)


def eval_set(settings: AddingSettings = SETTINGS, T: int | None = None):
    """A fixed batch of fresh sequences, never seen in training (its own seed)."""
    return adding_batch(settings.eval_size, settings.T if T is None else T, settings.eval_seed)


def mse(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Mean squared error of ``model`` on (x, y), on the model's device, without gradients."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.no_grad():
        err = float(torch.nn.functional.mse_loss(model(x.to(device)), y.to(device)))
    model.train(was_training)
    return err


def train(kind: str, settings: AddingSettings = SETTINGS, *, T: int | None = None,
          steps: int | None = None, seed: int | None = None, device=None, progress: bool | None = None,
          threads: int | None = None) -> tuple[AddingRegressor, History, float]:
    """Train one model through :func:`rnncourse.train.fit`; return (model, history, seconds).

    ``T``, ``steps`` and ``seed`` override the settings' values for this run.
    """
    settings = settings.replace(**{k: v for k, v in (("T", T), ("steps", steps), ("seed", seed))
                                   if v is not None})
    with torch_threads(threads):
        model = build_model(kind, settings)
        if device is not None:
            model.to(device)
        x_eval, y_eval = eval_set(settings)
        batches = AddingStream(settings.batch_size, settings.T, seed=settings.seed + 1)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        start = time.perf_counter()
        history = fit(model, batches, torch.nn.functional.mse_loss, optimizer, steps=settings.steps,
                      clip=settings.clip, eval_fn=lambda m: {"mse": mse(m, x_eval, y_eval)},
                      eval_every=min(settings.eval_every, settings.steps), monitor="mse", device=device,
                      progress=progress, desc=f"{model.kind} on the adding problem, T={settings.T}")
        return model, history, time.perf_counter() - start


def checkpoint(kind: str, folder: Path | str = DATA_DIR) -> Path:
    """Where the checkpoint of ``kind`` lives: data/adding/rnn.pt, lstm.pt."""
    return Path(folder) / f"{kind_of(kind).lower()}.pt"


def save(path: Path, model: AddingRegressor, history: History, seconds: float,
         settings: AddingSettings) -> None:
    """Weights, curves and settings in one small file (float32 tensors, plain types)."""
    steps, values = history.metric("mse")
    torch.save({
        "kind": model.kind.lower(),  # the files of data/adding/ say "rnn", "lstm"
        "config": settings.to_dict(),
        "state_dict": {k: v.detach().cpu().float() for k, v in model.state_dict().items()},
        "losses": torch.tensor(history.losses, dtype=torch.float32),  # every training step
        "eval_steps": torch.tensor(steps, dtype=torch.int64),
        "eval_mse": torch.tensor(values, dtype=torch.float32),
        "seconds": float(seconds),
        "threads": torch.get_num_threads(),
        "torch": str(torch.__version__),
    }, path)


def load(kind: str, folder: Path | str = DATA_DIR, device=None) -> tuple[AddingRegressor, dict]:
    """The saved model (in eval mode) and its record (config, losses, eval curve, seconds).

    ``record["config"]`` is the settings as saved (a dict);
    ``AddingSettings.from_dict(record["config"])`` turns it back into settings.
    """
    path = checkpoint(kind, folder)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}; regenerate it with `{REGENERATE}`")
    record = torch.load(path, map_location="cpu", weights_only=True)
    model = AddingRegressor(record["kind"], AddingSettings.from_dict(record["config"]).hidden_size)
    model.load_state_dict(record["state_dict"])
    if device is not None:
        model.to(device)
    return model.eval(), record


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=SETTINGS.steps)
    parser.add_argument("--out", type=Path, default=DATA_DIR)
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads (1 is fastest on a busy machine)")
    parser.add_argument("--kinds", nargs="+", default=list(SAVED), type=kind_of, choices=SAVED)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)  # for the whole run: the record notes the count
    args.out.mkdir(parents=True, exist_ok=True)
    settings = SETTINGS.replace(steps=args.steps)
    for kind in args.kinds:
        model, history, seconds = train(kind, settings, progress=True)
        path = checkpoint(kind, args.out)
        save(path, model, history, seconds, settings)
        print(f"{kind}: eval MSE {history.evals[-1]['mse']:.4f} after {history.steps} steps "
              f"in {seconds:.0f} s (constant answer: {CONSTANT_MSE:.4f}) -> {path}")


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
