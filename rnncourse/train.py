"""The course's training loop: ``fit``.

Every notebook trains through this one function, so the lessons spend their words
on the model and not on the loop, and every loop behaves the same way:

* a progress bar from ``tqdm.auto``: a widget in JupyterLab, text in a terminal;
* optional gradient clipping by global norm (``torch.nn.utils.clip_grad_norm_``),
  recording the norm *before* clipping, the number lesson 03 plots;
* evaluation every ``eval_every`` steps (default: after each epoch) and early
  stopping after ``patience`` evaluations without improvement;
* the model and every batch on one device;
* a :class:`History` of losses and metrics, ready to plot.

Progress bars: ``progress=None`` (the default) shows one except in fast mode
(``rnncourse.fast_mode()``: under nbgrader and the test suite), so grading output
and test logs stay clean; ``True`` or ``False`` force it on or off. The choice does
not depend on a TTY: JupyterLab's kernel has none, and that is where the bar matters.
"""
from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Callable, Iterable

import torch
from tqdm.auto import tqdm

from .device import fast_mode

Metrics = dict  # name -> float


@dataclass
class History:
    """What happened during :func:`fit`, in plain lists for plotting."""

    losses: list = field(default_factory=list)      # training loss of every step
    grad_norms: list = field(default_factory=list)  # global norm before clipping, every step (clip set)
    evals: list = field(default_factory=list)       # {"step", "epoch", metric: value, ...}
    best: dict | None = None                        # the best evaluation of the monitored metric
    stopped_early: bool = False
    stop_reason: str = ""                           # why training ended before its budget, if it did

    @property
    def steps(self) -> int:
        return len(self.losses)

    def metric(self, name: str) -> tuple[list, list]:
        """Steps and values of one evaluation metric: ``plt.plot(*history.metric("accuracy"))``."""
        rows = [e for e in self.evals if name in e]
        return [e["step"] for e in rows], [e[name] for e in rows]


def to_device(batch, device: torch.device):
    """``batch`` with every tensor in it (nested in tuples, lists or dicts) on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, (list, tuple)):
        moved = [to_device(b, device) for b in batch]
        return type(batch)(*moved) if hasattr(batch, "_fields") else type(batch)(moved)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def _model_device(model: torch.nn.Module) -> torch.device:
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _evaluate(model: torch.nn.Module, eval_fn: Callable) -> Metrics:
    # Evaluation must not train: no dropout, no gradients, and the mode restored after.
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            result = eval_fn(model)
    finally:
        model.train(was_training)
    if isinstance(result, dict):
        return {k: float(v) for k, v in result.items()}
    return {"loss": float(result)}


def _improved(value: float, best: float | None, mode: str, min_delta: float) -> bool:
    if best is None:
        return True
    return value < best - min_delta if mode == "min" else value > best + min_delta


def fit(
    model: torch.nn.Module,
    train_batches: Iterable,
    loss_fn: Callable,
    optimizer: torch.optim.Optimizer,
    *,
    epochs: int = 1,
    steps: int | None = None,
    clip: float | None = None,
    eval_fn: Callable | None = None,
    eval_every: int | None = None,
    monitor: str = "loss",
    mode: str = "min",
    patience: int | None = None,
    min_delta: float = 0.0,
    restore_best: bool = False,
    scheduler=None,
    device: torch.device | str | None = None,
    progress: bool | None = None,
    desc: str = "training",
) -> History:
    """Train ``model`` and return its :class:`History`.

    Each batch is a tuple ``(*inputs, targets)``: the step computes
    ``loss_fn(model(*inputs), targets)``, back-propagates, clips when ``clip`` is set,
    and steps ``optimizer`` (and ``scheduler``, once per step, when given).

    ``train_batches`` is iterated once per epoch (a list or a DataLoader). Training runs
    ``epochs`` passes, or exactly ``steps`` optimizer steps when ``steps`` is given.

    ``eval_fn(model)`` returns a float (recorded as ``"loss"``) or a dict of metrics; it
    runs in eval mode without gradients every ``eval_every`` steps (default: after each
    epoch) and once more at the end. With ``patience``, training stops after that many
    evaluations in a row without ``monitor`` improving by more than ``min_delta``
    (``mode="min"`` for losses, ``"max"`` for accuracies); ``restore_best`` then loads
    the best weights back into the model.

    ``device`` moves the model and every batch there; by default the model stays where
    it is and batches follow it. A loss that is not finite ends training (the reason is
    in ``History.stop_reason``), so a diverging run still leaves a history to plot.
    """
    if steps is None and epochs < 1:
        raise ValueError(f"epochs must be at least 1, got {epochs}")
    if steps is not None and steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if patience is not None and eval_fn is None:
        raise ValueError("early stopping (patience) needs an eval_fn to watch")
    if mode not in ("min", "max"):
        raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
    if device is not None:
        model.to(device)
    device = _model_device(model)

    try:
        per_epoch = len(train_batches)
    except TypeError:
        per_epoch = None  # a generator: the bar shows a count, not a fraction
    total = steps if steps is not None else (per_epoch * epochs if per_epoch is not None else None)
    show = (not fast_mode()) if progress is None else progress
    bar = tqdm(total=total, desc=desc, disable=not show, unit="step", leave=True)

    history = History()
    best_value, best_state, bad_evals = None, None, 0
    shown: dict = {}  # what the bar shows after the counts: smoothed loss, last evaluation

    def evaluate(step: int, epoch: int) -> bool:
        """Record an evaluation; True when early stopping says stop."""
        nonlocal best_value, best_state, bad_evals
        metrics = _evaluate(model, eval_fn)
        history.evals.append({"step": step, "epoch": epoch, **metrics})
        shown.update({f"eval {k}": f"{v:.4g}" for k, v in metrics.items()})
        bar.set_postfix(shown, refresh=False)
        if monitor not in metrics:
            if patience is not None:
                raise KeyError(f"eval_fn returned {sorted(metrics)}, no {monitor!r} to monitor")
            return False
        if _improved(metrics[monitor], best_value, mode, min_delta):
            best_value, bad_evals = metrics[monitor], 0
            history.best = history.evals[-1]
            if restore_best:
                best_state = copy.deepcopy(model.state_dict())
            return False
        bad_evals += 1
        return patience is not None and bad_evals >= patience

    model.train()
    step, epoch, last_eval, smooth = 0, 0, -1, 0.0
    try:
        while not history.stop_reason and (steps is not None or epoch < epochs):
            epoch += 1
            seen = 0
            for batch in train_batches:
                seen += 1
                *inputs, targets = to_device(batch, device)
                optimizer.zero_grad(set_to_none=True)
                loss = loss_fn(model(*inputs), targets)
                loss.backward()
                if clip is not None:
                    norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                    history.grad_norms.append(float(norm))
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                step += 1
                value = float(loss.detach())
                history.losses.append(value)
                if show:  # a running mean over ~20 steps reads better than each noisy loss
                    smooth = value if step == 1 else 0.95 * smooth + 0.05 * value
                    shown["loss"] = f"{smooth:.4g}"
                    bar.set_postfix(shown, refresh=False)
                bar.update(1)
                if not math.isfinite(value):
                    history.stop_reason = f"the loss became {value} at step {step}"
                    break
                if eval_fn is not None and eval_every and step % eval_every == 0:
                    last_eval = step
                    if evaluate(step, epoch):
                        history.stopped_early = True
                        history.stop_reason = f"{monitor} did not improve in {patience} evaluations"
                        break
                if steps is not None and step >= steps:
                    break
            else:  # the epoch ran to its end
                if seen == 0:
                    history.stop_reason = "train_batches yielded no batch (an exhausted iterator?)"
                elif eval_fn is not None and not eval_every:
                    last_eval = step
                    if evaluate(step, epoch):
                        history.stopped_early = True
                        history.stop_reason = f"{monitor} did not improve in {patience} epochs"
                continue
            break  # the epoch was cut short: the budget is spent or training must stop
        # The history always ends with the metrics of the final weights.
        if eval_fn is not None and last_eval != step and step > 0 and math.isfinite(history.losses[-1]):
            evaluate(step, epoch)
        if restore_best and best_state is not None:
            model.load_state_dict(best_state)
        if history.stop_reason:
            bar.set_description(f"{desc} (stopped: {history.stop_reason})", refresh=False)
    finally:
        bar.close()  # also when the learner interrupts the kernel
    return history
