"""Exploration for lesson 03: how gradients shrink or grow on their way back in time.

Plain functions (tested without a browser) and the ipywidgets built on them.
Everything is computed in float64 on the CPU: the norms span tens of orders of
magnitude, and in float32 the smallest of them round to exactly zero, which a
log-scale plot cannot show.
"""
from __future__ import annotations

import numpy as np
import torch

from rnncourse.functional import input_projection, rnn_step
from rnncourse.init import set_forget_bias
from rnncourse.plots import plot_curves, live_figure


def orthogonal(hidden_size: int, seed: int = 0) -> torch.Tensor:
    """A random orthogonal (H, H) matrix, float64: every singular value and every
    |eigenvalue| is 1, so ``s * orthogonal(H)`` has spectral radius and norm exactly s."""
    gen = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(hidden_size, hidden_size, generator=gen, dtype=torch.float64))
    return q * torch.sign(torch.diagonal(r))  # the sign fix makes the draw uniform


def power_norms(W: torch.Tensor, T: int) -> np.ndarray:
    """Spectral norms of W^k for k = 0..T, a (T+1,) array: the product of k step
    Jacobians diag(1 - h^2) W while the state stays near 0, where tanh' = 1."""
    P = torch.eye(W.shape[0], dtype=torch.float64)
    norms = [1.0]
    for _ in range(T):
        P = W.double() @ P
        norms.append(float(torch.linalg.matrix_norm(P, ord=2)))
    return np.array(norms)


def radius_figure(radii=(0.9, 1.0, 1.1), T: int = 100, hidden_size: int = 16, seed: int = 0):
    """||(s Q)^k|| against k for an orthogonal Q and each scale s; returns (fig, {s: norms})."""
    import matplotlib.pyplot as plt
    Q = orthogonal(hidden_size, seed)
    norms = {float(s): power_norms(s * Q, T) for s in radii}
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    plot_curves(ax, np.arange(T + 1), {f"spectral radius {s}": n for s, n in norms.items()},
                "number of steps $k$", "$\\|(sQ)^k\\|_2$ (log scale)",
                "Products of Jacobians with an orthogonal $W_{hh}$ scaled by $s$", logy=True,
                styles=("-", "--", "-."))
    fig.tight_layout()
    return fig, norms


def rnn_state_gradients(scale: float, T: int, hidden_size: int = 32, input_size: int = 4,
                        seed: int = 0, dtype: torch.dtype = torch.float64,
                        norm_in_float64: bool = False) -> np.ndarray:
    """||dL/dh_t|| for t = 0..T, a (T+1,) array, in a tanh RNN with W_hh = scale * Q
    (Q orthogonal, so ``scale`` is its spectral radius), random inputs, and the loss
    L = u . h_T read at the last step only (u a unit vector, so the last entry is 1).

    ``dtype`` is the precision of the whole computation. A float32 norm squares
    entries first, so gradients of about 1e-23 give a norm of exactly 0 although they
    are not zero; ``norm_in_float64`` upcasts each gradient before taking its norm."""
    gen = torch.Generator().manual_seed(seed)
    W_hh = scale * orthogonal(hidden_size, seed)
    W_ih = torch.randn(hidden_size, input_size, generator=gen, dtype=torch.float64) / input_size ** 0.5
    x = torch.randn(T, input_size, generator=gen, dtype=torch.float64)
    u = torch.randn(hidden_size, generator=gen, dtype=torch.float64)
    W_hh, W_ih, x, u = (t.to(dtype) for t in (W_hh, W_ih, x, u / u.norm()))
    gx = input_projection(x, W_ih, None)  # (T, H): no biases in this RNN
    h = torch.zeros(1, hidden_size, dtype=dtype, requires_grad=True)  # (1, H)
    states = [h]
    with torch.enable_grad():
        for t in range(T):
            h = rnn_step(gx[t:t + 1], h, W_hh)  # (1, H)
            h.retain_grad()
            states.append(h)
        (h[0] @ u).backward()
    return np.array([float((s.grad.double() if norm_in_float64 else s.grad).norm()) for s in states])


def _gradient_axes(ax, curves: dict, T: int, title: str):
    t = np.arange(T + 1)
    plot_curves(ax, t, curves, "time step $t$", "$\\|\\partial L / \\partial h_t\\|$ (log scale)",
                title, logy=True, styles=("-", "--", "-.", ":"))
    ax.set_xlim(0, T)
    return ax


def draw_gradients(fig, scale: float, T: int, hidden_size: int = 32, seed: int = 0) -> None:
    """The explorer's panel: the tanh RNN's gradient norms and the linear bound scale^(T-t)."""
    norms = rnn_state_gradients(scale, T, hidden_size, seed=seed)
    bound = float(scale) ** (T - np.arange(T + 1.0))
    fig.clear()
    ax = fig.subplots()
    label = f"tanh RNN (autograd): $\\|\\partial L/\\partial h_0\\|$ = {norms[0]:.1e}"
    _gradient_axes(ax, {label: norms, "linear bound $s^{T-t}$": bound}, T,
                   f"Gradient reaching $h_t$ from $L(h_T)$: scale $s$ = {scale:.2f}, T = {T}")
    fig.tight_layout()


def static_figure(scales=(0.8, 1.0, 1.5, 3.0), T: int = 100, hidden_size: int = 32, seed: int = 0):
    """The explorer's story where widgets don't render: one curve per scale."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    curves = {f"scale {s}": rnn_state_gradients(s, T, hidden_size, seed=seed) for s in scales}
    _gradient_axes(ax, curves, T, f"Gradient reaching $h_t$ from a loss at step T = {T} (tanh RNN)")
    fig.tight_layout()
    return fig


def gradient_explorer(hidden_size: int = 32, seed: int = 0):
    """Sliders for the weight scale (spectral radius of W_hh) and the sequence length."""
    import ipywidgets as widgets

    scale = widgets.FloatSlider(value=1.0, min=0.5, max=3.0, step=0.05, description="W_hh scale",
                                continuous_update=False)
    length = widgets.IntSlider(value=50, min=10, max=200, step=10, description="length T",
                               continuous_update=False)

    def draw(fig):
        draw_gradients(fig, scale.value, length.value, hidden_size, seed)

    out = live_figure((scale, length), draw, figsize=(8, 3.8))
    return widgets.VBox([widgets.HBox([scale, length]), out])


# ----------------------------------------------------------------------------
# default initialisation: how much gradient reaches the first input of 100

def default_models(input_size: int = 2, hidden_size: int = 64, seed: int = 0) -> dict:
    """nn.RNN, nn.LSTM and an nn.LSTM with forget-gate bias 1 (``rnncourse.init.set_forget_bias``),
    each as PyTorch initialises it (seeded), in float64 on the CPU."""
    def make(cls):
        torch.manual_seed(seed)
        return cls(input_size, hidden_size, batch_first=True, dtype=torch.float64)
    return {"nn.RNN": make(torch.nn.RNN), "nn.LSTM": make(torch.nn.LSTM),
            "nn.LSTM, forget bias 1": set_forget_bias(make(torch.nn.LSTM), 1.0)}


def input_gradient_norms(model: torch.nn.Module, T: int = 100, batch_size: int = 32, seed: int = 0,
                         dtype: torch.dtype = torch.float64) -> np.ndarray:
    """||dL/dx_t|| over the batch for t = 1..T, a (T,) array, with L = u . h_T read at the
    last step only. Works with torch.nn's fused modules, whose inner states autograd
    cannot reach: the input x_t enters only at step t, so its gradient is what step t receives."""
    from rnncourse.experiments.settings import torch_threads
    model = model.to(dtype)
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch_size, T, model.input_size, generator=gen, dtype=torch.float64)
    x = x.to(dtype).requires_grad_(True)
    u = torch.randn(model.hidden_size, generator=gen, dtype=torch.float64).to(dtype)
    # one thread: these layers are small, and on a busy machine two threads wait for each other
    with torch.enable_grad(), torch_threads(1):
        outputs, _ = model(x)  # (B, T, H)
        (outputs[:, -1] @ u).sum().backward()
    for p in model.parameters():
        p.grad = None  # leave the model as it came
    return x.grad.norm(dim=(0, 2)).double().numpy()  # (T,)


def ratio_figure(norms: dict):
    """||dL/dx_t|| against t, one curve per model, log scale."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4))
    T = len(next(iter(norms.values())))
    plot_curves(ax, np.arange(1, T + 1), norms, "time step $t$ of the input",
                "$\\|\\partial L / \\partial x_t\\|$ (log scale)",
                f"Gradient from a loss at step {T} back to each input, default initialisation",
                logy=True, styles=("-", "--", "-."))
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------
# a training run that explodes, and clipping (lesson 03, section 5)

def explosion_run(clip_fn=None, max_norm: float = 1.0, steps: int = 80, lr: float = 0.3,
                  scale: float = 3.0, T: int = 30, hidden_size: int = 32, batch_size: int = 64,
                  seed: int = 0) -> dict:
    """Train ``nn.RNN`` (W_hh = scale * an orthogonal matrix, so its spectral radius is
    ``scale``) and a linear head on the adding problem with plain SGD, float64, one thread.

    ``clip_fn(parameters, max_norm)`` (torch's ``clip_grad_norm_`` or lesson 03's) is called
    between ``backward()`` and the step; None trains without clipping. Returns
    {"losses": (steps,), "norms": (steps,) the global gradient norm before clipping};
    once the loss is not finite the run stops and the rest is nan.
    """
    from rnncourse.data.adding import adding_batch
    from rnncourse.experiments.settings import torch_threads
    losses, norms = np.full(steps, np.nan), np.full(steps, np.nan)
    with torch_threads(1):
        torch.manual_seed(seed)
        rnn = torch.nn.RNN(2, hidden_size, batch_first=True, dtype=torch.float64)
        with torch.no_grad():
            rnn.weight_hh_l0.copy_(scale * orthogonal(hidden_size, seed))
        head = torch.nn.Linear(hidden_size, 1, dtype=torch.float64)
        params = [*rnn.parameters(), *head.parameters()]
        opt = torch.optim.SGD(params, lr=lr)
        gen = torch.Generator().manual_seed(seed)
        for step in range(steps):
            x, y = adding_batch(batch_size, T, generator=gen, dtype=torch.float64)  # (B, T, 2), (B,)
            loss = ((head(rnn(x)[0][:, -1]).squeeze(-1) - y) ** 2).mean()
            if not torch.isfinite(loss):
                break
            opt.zero_grad()
            loss.backward()
            norm = torch.sqrt(sum((p.grad.detach() ** 2).sum() for p in params))  # before clipping
            if clip_fn is not None:
                clip_fn(params, max_norm)
            opt.step()
            losses[step], norms[step] = loss.item(), norm.item()
    return {"losses": losses, "norms": norms}
