"""rnncourse.train.fit: it learns, it stops, it clips, and it records what happened."""
from __future__ import annotations

import math

import pytest
import torch

from rnncourse.train import History, fit, to_device


def regression_task(seed: int = 0, n_batches: int = 8):
    """y = x @ w + 1 exactly: a linear model can drive the loss to ~0."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(3, 1, generator=g)
    batches = []
    for _ in range(n_batches):
        x = torch.randn(16, 3, generator=g)
        batches.append((x, x @ w + 1.0))
    return batches


def mse_on(batches):
    def eval_fn(model):
        return {"loss": sum(torch.nn.functional.mse_loss(model(x), y).item() for x, y in batches) / len(batches)}
    return eval_fn


def linear(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Linear(3, 1)


def test_learns_a_trivial_task():
    batches, model = regression_task(), linear()
    before = mse_on(batches)(model)["loss"]
    history = fit(model, batches, torch.nn.functional.mse_loss,
                  torch.optim.SGD(model.parameters(), lr=0.1), epochs=20,
                  eval_fn=mse_on(batches), progress=False)
    assert before > 0.5
    assert history.evals[-1]["loss"] < 1e-3 * before
    assert history.losses[-1] < history.losses[0]


def test_history_shape_epochs_and_steps():
    batches = regression_task(n_batches=5)
    model = linear()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    h = fit(model, batches, torch.nn.functional.mse_loss, opt, epochs=3,
            eval_fn=mse_on(batches), progress=False)
    assert isinstance(h, History) and h.steps == 15 and len(h.losses) == 15
    # one evaluation per epoch, at the epoch's last step
    assert [(e["epoch"], e["step"]) for e in h.evals] == [(1, 5), (2, 10), (3, 15)]
    assert h.metric("loss")[0] == [5, 10, 15] and h.grad_norms == [] and not h.stopped_early

    # a step budget cycles over the batches and ends with a final evaluation
    h = fit(model, batches, torch.nn.functional.mse_loss, opt, steps=12, eval_fn=mse_on(batches),
            eval_every=4, progress=False)
    assert h.steps == 12 and [e["step"] for e in h.evals] == [4, 8, 12]
    h = fit(model, batches, torch.nn.functional.mse_loss, opt, steps=7, eval_fn=mse_on(batches),
            progress=False)
    assert [e["step"] for e in h.evals] == [5, 7]


def test_early_stopping_stops_and_restores_best():
    batches, model = regression_task(), linear()
    calls = []

    def worsening(model):  # a metric that only gets worse after its second evaluation
        calls.append(1)
        return {"loss": [3.0, 1.0, 2.0, 2.5, 2.7, 2.9, 3.1][min(len(calls) - 1, 6)]}

    h = fit(model, batches, torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.01),
            epochs=50, eval_fn=worsening, patience=3, progress=False)
    assert h.stopped_early and "did not improve" in h.stop_reason
    assert len(h.evals) == 5 and h.steps == 5 * len(batches)  # best at eval 2, then 3 bad ones
    assert h.best["loss"] == 1.0 and h.best["epoch"] == 2

    # restore_best: the model ends with the weights it had at its best evaluation
    model = linear()
    snapshots = []

    def track(model):
        snapshots.append(model.weight.detach().clone())
        return {"acc": [0.1, 0.9, 0.5, 0.4][min(len(snapshots) - 1, 3)]}

    h = fit(model, batches, torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.05),
            epochs=10, eval_fn=track, monitor="acc", mode="max", patience=2, restore_best=True,
            progress=False)
    assert h.stopped_early and h.best["acc"] == 0.9
    assert torch.equal(model.weight, snapshots[1]) and not torch.equal(model.weight, snapshots[-1])


def test_clipping_applies_and_records_the_norm_before_clipping():
    x, y = torch.tensor([[1.0]]), torch.tensor([[0.0]])
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(10.0)
    # loss = (w x)^2, dloss/dw = 2 w x^2 = 20: clipped to norm 1, SGD lr=1 moves w by exactly 1
    h = fit(model, [(x, y)], torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=1.0),
            steps=1, clip=1.0, progress=False)
    assert h.grad_norms == [pytest.approx(20.0)]
    assert model.weight.item() == pytest.approx(9.0)


def test_non_finite_loss_ends_training_with_a_reason():
    model = torch.nn.Linear(1, 1)
    batches = [(torch.tensor([[1.0]]), torch.tensor([[float("nan")]]))] * 3
    h = fit(model, batches, torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1),
            epochs=5, eval_fn=lambda m: 0.0, progress=False)
    assert h.steps == 1 and math.isnan(h.losses[0]) and "nan" in h.stop_reason
    assert h.evals == []  # no evaluation of weights a NaN step produced


def test_multi_input_batches_and_device():
    class Masked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(2, 1)

        def forward(self, x, mask):
            return self.lin(x) * mask

    g = torch.Generator().manual_seed(1)
    batches = [(torch.randn(4, 2, generator=g), torch.ones(4, 1), torch.randn(4, 1, generator=g))
               for _ in range(3)]
    model = Masked()
    h = fit(model, batches, torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1),
            epochs=2, device="cpu", progress=False)
    assert h.steps == 6 and next(model.parameters()).device.type == "cpu"
    moved = to_device({"a": (torch.zeros(1), [torch.ones(1)]), "b": 3}, torch.device("cpu"))
    assert moved["b"] == 3 and isinstance(moved["a"], tuple) and isinstance(moved["a"][1], list)


def test_progress_bar_silent_in_fast_mode(monkeypatch, capsys):
    monkeypatch.setenv("RNNCOURSE_FAST", "1")
    model = linear()
    fit(model, regression_task(n_batches=2), torch.nn.functional.mse_loss,
        torch.optim.SGD(model.parameters(), lr=0.01), epochs=1)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    # forced on, the text bar goes to stderr (outside a notebook)
    fit(model, regression_task(n_batches=2), torch.nn.functional.mse_loss,
        torch.optim.SGD(model.parameters(), lr=0.01), epochs=1, progress=True, desc="demo")
    assert "demo" in capsys.readouterr().err


@pytest.mark.parametrize("kwargs, message", [
    ({"epochs": 0}, "epochs"), ({"steps": 0}, "steps"), ({"patience": 2}, "eval_fn"),
    ({"mode": "up", "eval_fn": lambda m: 0.0}, "mode")])
def test_rejects_bad_arguments(kwargs, message):
    model = linear()
    with pytest.raises(ValueError, match=message):
        fit(model, regression_task(n_batches=1), torch.nn.functional.mse_loss,
            torch.optim.SGD(model.parameters(), lr=0.01), progress=False, **kwargs)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_moves_model_and_cpu_batches_to_the_gpu():
    batches, model = regression_task(), linear()
    h = fit(model, batches, torch.nn.functional.mse_loss, torch.optim.SGD(model.parameters(), lr=0.1),
            epochs=20, device="cuda", eval_fn=lambda m: sum(
                torch.nn.functional.mse_loss(m(x.cuda()), y.cuda()).item() for x, y in batches),
            progress=False)
    assert next(model.parameters()).is_cuda and h.evals[-1]["loss"] < 1e-2
