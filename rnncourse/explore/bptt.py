r"""Exploration for lesson 02: how much each time step adds to the gradient of W_hh.

The gradient of a shared weight is a sum over time, one term per step:
:math:`\partial L/\partial W_{hh} = \sum_t \delta z_t^\top h_{t-1}`. To see the
terms without deriving anything, give every step its *own copy* of W_hh, run the
RNN, and ask autograd for each copy's gradient: copy t's gradient is step t's
term, and the copies' gradients add up to the shared weight's.

The logic is plain functions (tested without a browser); ``contribution_explorer``
wraps them in ipywidgets. The RNN is lesson 01's toy RNN (W_hh normalised to
spectral radius 1, so ``recurrent_scale`` is its spectral radius).
"""
from __future__ import annotations

import numpy as np
import torch

from rnncourse.explore.rnn import toy_rnn
from rnncourse.functional import folded_bias, input_projection, rnn_step
from rnncourse.plots import plot_curves, live_figure

LOSSES = ("last step", "every step")
_LOSS_TEXT = {"last step": "loss at the last step", "every step": "loss at every step"}


def toy_setup(hidden_size: int = 8, input_size: int = 2, T: int = 60, seed: int = 2) -> dict:
    """Seeded toy weights, an input sequence x (T, I) and a readout vector v (H,),
    all float64: the loss is v . h_T (or the sum of v . h_t over every step)."""
    gen = torch.Generator().manual_seed(seed + 1000)
    return {
        "weights": toy_rnn(hidden_size, input_size, seed),
        "x": torch.randn(T, input_size, generator=gen, dtype=torch.float64),
        "v": torch.randn(hidden_size, generator=gen, dtype=torch.float64),
    }


def step_contributions(weights: dict, x: torch.Tensor, v: torch.Tensor,
                       recurrent_scale: float = 1.0, loss: str = "last step") -> torch.Tensor:
    """Each step's term of dL/dW_hh, shape (T, H, H); their sum is dL/dW_hh.

    ``x`` is one sequence (T, I), h0 = 0. ``loss`` is "last step" (L = v . h_T) or
    "every step" (L = sum_t v . h_t).
    """
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}")
    W_hh = (recurrent_scale * weights["W_hh"]).detach()
    copies = [W_hh.clone().requires_grad_() for _ in range(x.shape[0])]  # one per step
    gx = input_projection(x, weights["W_ih"], folded_bias(weights["b_ih"], weights["b_hh"]))  # (T, H)
    h = torch.zeros(1, W_hh.shape[0], dtype=x.dtype)  # (1, H)
    total = x.new_zeros(())
    with torch.enable_grad():
        for t, W in enumerate(copies):
            h = rnn_step(gx[t:t + 1], h, W)  # (1, H): step t uses its own copy of W_hh
            if loss == "every step":
                total = total + h[0] @ v
        if loss == "last step":
            total = h[0] @ v
        grads = torch.autograd.grad(total, copies)
    return torch.stack(grads).detach()  # (T, H, H)


def contribution_norms(weights: dict, x: torch.Tensor, v: torch.Tensor,
                       recurrent_scale: float = 1.0, loss: str = "last step") -> np.ndarray:
    """The Frobenius norm of each step's term, a (T,) array (step t = 1..T)."""
    c = step_contributions(weights, x, v, recurrent_scale, loss)
    return c.flatten(1).norm(dim=1).numpy()


def truncation_error(weights: dict, x: torch.Tensor, v: torch.Tensor, ks,
                     recurrent_scale: float = 1.0) -> np.ndarray:
    """For a loss at the last step: the relative error ||g_k - g|| / ||g|| of the
    gradient g_k that keeps only the last k steps' terms (backpropagating k steps),
    one value per k in ``ks``."""
    c = step_contributions(weights, x, v, recurrent_scale, "last step")  # (T, H, H)
    full = c.sum(0)
    return np.array([float((c[c.shape[0] - k:].sum(0) - full).norm() / full.norm()) for k in ks])


def draw_contributions(fig, setup: dict, recurrent_scale: float, T: int, loss: str) -> None:
    """The explorer's figure: each step's share of the gradient, on a log scale."""
    x = setup["x"][:T]
    norms = contribution_norms(setup["weights"], x, setup["v"], recurrent_scale, loss)
    fig.clear()
    ax = fig.subplots()
    t = np.arange(1, T + 1)
    ax.bar(t, norms, color="C0" if loss == "last step" else "C1", width=0.8)
    ax.set_yscale("log")
    positive = norms[norms > 0]
    low = positive.min() / 3 if positive.size else 1e-3
    ax.set_ylim(low, max(10.0, norms.max() * 3))
    ax.set_xlim(0, T + 1)
    ax.set_xlabel("time step $t$")
    ax.set_ylabel(r"$\|$step $t$'s term of $\partial L/\partial W_{hh}\|$ (log scale)")
    ax.set_title(f"Each step's term, {_LOSS_TEXT[loss]}, spectral radius {recurrent_scale:.2f}, T = {T}")
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()


def static_figure(setup: dict, scales=(0.5, 1.0, 1.5), T: int = 40):
    """Left: the per-step terms for a loss at the last step, one line per spectral
    radius. Right: the same with the loss summed over every step."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8), sharey=True)
    t = np.arange(1, T + 1)
    for ax, loss in zip(axes, LOSSES):
        # step 1's term is exactly 0 (h0 = 0): left out rather than drawn as a cliff
        curves = {f"radius {s}": np.where(t > 1, contribution_norms(
                      setup["weights"], setup["x"][:T], setup["v"], s, loss), np.nan)
                  for s in scales}
        plot_curves(ax, t, curves, "time step $t$", "norm of step $t$'s term (log scale)",
                    f"Each step's term in dL/dW_hh, {_LOSS_TEXT[loss]}", logy=True)
    fig.tight_layout()
    return fig


def contribution_explorer(hidden_size: int = 8, max_T: int = 60, seed: int = 2):
    """A slider for the spectral radius of W_hh and one for the length T, and a
    choice of loss; the bar chart of per-step terms redraws on every change."""
    import ipywidgets as widgets

    setup = toy_setup(hidden_size, 2, max_T, seed)
    scale = widgets.FloatSlider(value=1.0, min=0.1, max=2.5, step=0.05, description="W_hh scale",
                                continuous_update=False)
    length = widgets.IntSlider(value=30, min=2, max=max_T, step=1, description="length T",
                               continuous_update=False)
    # A Dropdown, not ToggleButtons: the browser test's "toggle button" selector also
    # matches ToggleButtons' active option, whose click changes nothing.
    loss = widgets.Dropdown(options=list(LOSSES), value="last step", description="loss at")

    def draw(fig):
        draw_contributions(fig, setup, scale.value, length.value, loss.value)

    out = live_figure((scale, length, loss), draw, figsize=(9, 3.6))
    return widgets.VBox([widgets.HBox([scale, length]), loss, out])


# ----------------------------------------------------------------------------
# training with a hand-written backward pass (lesson 02, section 3b)

def echo_batch(batch_size: int, T: int, vocab: int, lag: int, generator: torch.Generator):
    """One-hot inputs (B, T, V) and targets (B, T): the token ``lag`` steps earlier
    (-100, ignored by the loss, where there is none)."""
    tokens = torch.randint(0, vocab, (batch_size, T), generator=generator)  # (B, T)
    x = torch.nn.functional.one_hot(tokens, vocab).double()  # (B, T, V)
    y = torch.full_like(tokens, -100)
    y[:, lag:] = tokens[:, :-lag]
    return x, y


def train_tiny_rnn(backward=None, steps: int = 150, hidden_size: int = 12, vocab: int = 4,
                   T: int = 12, lag: int = 2, batch_size: int = 32, lr: float = 0.5,
                   seed: int = 0) -> np.ndarray:
    """Train a vanilla RNN plus a linear head with plain SGD on the echo task (repeat the
    token from ``lag`` steps ago) and return the loss at every step (nats), float64.

    ``backward`` computes the RNN's gradients from the direct gradient on its states, with
    the signature of lesson 02's ``rnn_backward(x, h0, W_ih, W_hh, b_ih, b_hh, dh)``
    returning ``(dx, dh0, dW_ih, dW_hh, db_ih, db_hh)``; None uses autograd for the whole
    model. Either way the head's gradient and ``dh`` come from autograd on the head alone,
    and the same seed gives the same batches and initial weights, so two correct
    backward functions give the same curve up to float64 rounding. Runs on one torch
    thread: the model is tiny, and two threads waiting for each other are slower.
    """
    from rnncourse.experiments.settings import torch_threads
    with torch_threads(1):
        return _train_tiny_rnn(backward, steps, hidden_size, vocab, T, lag, batch_size, lr, seed)


def _train_tiny_rnn(backward, steps, hidden_size, vocab, T, lag, batch_size, lr, seed):
    gen = torch.Generator().manual_seed(seed)
    W = {"W_ih": torch.randn(hidden_size, vocab, generator=gen, dtype=torch.float64) / vocab ** 0.5,
         "W_hh": torch.randn(hidden_size, hidden_size, generator=gen, dtype=torch.float64) / hidden_size ** 0.5,
         "b_ih": torch.zeros(hidden_size, dtype=torch.float64),
         "b_hh": torch.zeros(hidden_size, dtype=torch.float64)}
    head_w = torch.randn(vocab, hidden_size, generator=gen, dtype=torch.float64) / hidden_size ** 0.5
    head_b = torch.zeros(vocab, dtype=torch.float64)
    losses = []
    for _ in range(steps):
        x, y = echo_batch(batch_size, T, vocab, lag, gen)
        h0 = torch.zeros(batch_size, hidden_size, dtype=torch.float64)
        params = [W[k].requires_grad_(backward is None) for k in ("W_ih", "W_hh", "b_ih", "b_hh")]
        hw, hb = head_w.requires_grad_(), head_b.requires_grad_()
        gx = input_projection(x.reshape(-1, vocab), params[0], folded_bias(params[2], params[3]))
        gx = gx.view(batch_size, T, hidden_size)  # (B, T, H)
        h, states = h0, []
        for t in range(T):
            h = rnn_step(gx[:, t], h, params[1])  # (B, H)
            states.append(h)
        hs = torch.stack(states, dim=1)  # (B, T, H)
        if backward is not None:
            hs = hs.detach().requires_grad_()  # autograd stops here; the learner's code goes on
        loss = torch.nn.functional.cross_entropy((hs @ hw.T + hb).flatten(0, 1), y.flatten())
        if backward is None:
            grads = torch.autograd.grad(loss, [hw, hb, *params])
        else:
            g_hw, g_hb, dh = torch.autograd.grad(loss, [hw, hb, hs])
            _, _, *rnn_grads = backward(x, h0, *(p.detach() for p in params), dh)
            grads = [g_hw, g_hb, *rnn_grads]
        with torch.no_grad():  # plain SGD
            head_w, head_b = hw - lr * grads[0], hb - lr * grads[1]
            for k, g in zip(("W_ih", "W_hh", "b_ih", "b_hh"), grads[2:]):
                W[k] = W[k].detach() - lr * g
        losses.append(loss.item())
    return np.array(losses)
