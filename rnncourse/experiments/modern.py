r"""Lesson 11's measurements: what a linear recurrence buys, in time and memory.

    python -m rnncourse.experiments.modern                # all three, writes data/modern/
    python -m rnncourse.experiments.modern --only timing  # or memory, or adding
    python -m rnncourse.experiments.modern --device cuda  # time on a GPU (saved as timing_cuda.json)

1. **Training time against T** (``timing_<device>.json``): one training step
   (forward, backward of a mean-squared loss) of one layer, input and hidden size
   ``width``, batch ``batch_size``, for T from 64 to 4096: the course's reference
   GRU (a Python loop over time), ``torch.nn.GRU`` (a fused kernel), minGRU as a
   loop (``mode="sequential"``), minGRU by the parallel scan (``mode="scan"``) and
   one causal self-attention layer (:class:`CausalSelfAttention`, below). Each
   time is the best of ``repeats`` after a warm-up; a model whose step took longer
   than ``max_seconds`` is not timed at longer T (recorded as null).
2. **Generation against context length** (``memory.json``): the time and the
   memory of producing one more token after a context of n tokens: a minGRU
   (2 layers) carries a state of L·B·H numbers whatever n is; attention keeps a
   cache of every key and value, 2·n·B·H numbers, and reads all of it per token.
   Memory is the bytes of the tensors each one keeps (``nbytes``), time the best of
   ``repeats``.
3. **minGRU against GRU on the adding problem** (``adding.json``, lesson 03's
   task, and ``mingru_adding.pt``): ``torch.nn.GRU`` and minGRU of one and two
   layers, the same steps, batch, optimiser, clipping and seeds; the MSE on fresh
   sequences against the input-blind 1/6. The two-layer minGRU at ``checkpoint_T``
   (seed 0) is saved: the lesson streams it one token at a time.

Timings depend on the machine and its load: each file records the device,
torch's thread count and the load average, and the lesson says so.
"""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

import rnncourse
from rnncourse.data.adding import AddingStream, adding_batch
from rnncourse.experiments.settings import Settings, command_run, experiment_parser, torch_threads
from rnncourse.mingru import MinGRU, MinGRUModel
from rnncourse.paths import data_dir
from rnncourse.train import History, fit

DATA_DIR = data_dir("modern")
REGENERATE = "python -m rnncourse.experiments.modern"
TIMED = ("GRU (rnncourse)", "nn.GRU", "minGRU loop", "minGRU scan", "attention")
ADDING_KINDS = ("GRU", "minGRU", "minGRU x2")


@dataclass(frozen=True)
class ModernSettings(Settings):
    # 1. training time against T
    lengths: tuple = (64, 128, 256, 512, 1024, 2048, 4096)
    width: int = 64               # input and hidden size of every timed layer
    batch_size: int = 8
    repeats: int = 3
    max_seconds: float = 4.0      # slower than this at some T: not timed at longer T
    # 2. generation against context length
    contexts: tuple = (16, 64, 256, 1024, 4096, 16384)
    gen_layers: int = 2
    # 3. the adding problem
    adding_T: tuple = (50, 100)
    seeds: tuple = (0, 1, 2)
    hidden_size: int = 32
    steps: int = 800
    adding_batch: int = 64
    lr: float = 3e-3
    clip: float = 1.0
    eval_every: int = 100
    eval_size: int = 1000
    seed: int = 0
    checkpoint_T: int = 50


SETTINGS = ModernSettings()  # what data/modern/ was made with


# ----------------------------------------------------------------------------
# a causal self-attention layer: the comparison

class CausalSelfAttention(nn.Module):
    r"""One head of causal self-attention over x (B, T, d), written out:

    .. math::
        Q, K, V = x W_Q^T, x W_K^T, x W_V^T, \qquad
        y = \operatorname{softmax}\Big(\frac{Q K^T}{\sqrt d} + M\Big) V\, W_O^T,

    with :math:`M_{ts} = -\infty` for :math:`s > t` (a token sees only the past).
    The (B, T, T) score matrix is what makes time and memory grow like
    :math:`T^2`. :meth:`step` generates with a cache of every key and value so far:
    each new token costs one query against n keys.
    """

    def __init__(self, d: int, device=None, dtype=None):
        super().__init__()
        self.qkv = nn.Linear(d, 3 * d, bias=False, device=device, dtype=dtype)
        self.out = nn.Linear(d, d, bias=False, device=device, dtype=dtype)
        self.scale = 1.0 / math.sqrt(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[1]
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # each (B, T, d)
        scores = (q @ k.transpose(1, 2)) * self.scale  # (B, T, T)
        future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)  # (T, T): s > t
        weights = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)  # (B, T, T)
        return self.out(weights @ v)  # (B, T, d)

    def step(self, x_t: torch.Tensor, cache: tuple | None = None) -> tuple:
        """x_t (B, d), cache (K, V) each (B, n, d) -> (y_t (B, d), cache with n + 1 rows)."""
        q, k, v = self.qkv(x_t).chunk(3, dim=-1)  # each (B, d)
        K = k[:, None] if cache is None else torch.cat([cache[0], k[:, None]], dim=1)  # (B, n+1, d)
        V = v[:, None] if cache is None else torch.cat([cache[1], v[:, None]], dim=1)
        weights = torch.softmax((K @ q[:, :, None]).squeeze(-1) * self.scale, dim=-1)  # (B, n+1)
        return self.out((weights[:, None] @ V).squeeze(1)), (K, V)


# ----------------------------------------------------------------------------
# 1. training time against T

def timed_model(name: str, width: int, device) -> nn.Module:
    """The layer behind each name of TIMED, on ``device``."""
    torch.manual_seed(0)
    if name == "GRU (rnncourse)":
        return rnncourse.GRU(width, width, batch_first=True).to(device)
    if name == "nn.GRU":
        return nn.GRU(width, width, batch_first=True).to(device)
    if name == "attention":
        return CausalSelfAttention(width).to(device)
    return MinGRU(width, width, mode="sequential" if name == "minGRU loop" else "scan").to(device)


def _sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device) -> float:
    """Best wall time of ``repeats`` calls after one warm-up, in seconds (the GPU
    synchronised). The best, not the mean: other programs only ever add time."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def training_step_time(name: str, T: int, settings: ModernSettings = SETTINGS, device="cpu",
                       threads: int | None = None) -> float:
    """Seconds for one forward and backward pass of ``name`` over (B, T, width);
    ``threads`` sets torch's CPU threads for this measurement only."""
    model = timed_model(name, settings.width, device)
    gen = torch.Generator().manual_seed(T)
    x = torch.randn(settings.batch_size, T, settings.width, generator=gen).to(device)  # (B, T, d)

    def step():
        model.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, tuple) else out  # (B, T, d)
        out.pow(2).mean().backward()
    with torch_threads(threads):
        return best_time(step, settings.repeats, device)


def run_timing(settings: ModernSettings = SETTINGS, device="cpu", log=print) -> dict:
    times = {name: [] for name in TIMED}
    for name in TIMED:
        too_slow = False
        for T in settings.lengths:
            if too_slow:
                times[name].append(None)
                continue
            seconds = training_step_time(name, T, settings, device)
            times[name].append(seconds)
            too_slow = seconds > settings.max_seconds
            log(f"{name:>16} T={T:>5}: {1e3 * seconds:9.1f} ms per training step")
    return {"lengths": list(settings.lengths), "seconds": times, **machine(device)}


def machine(device) -> dict:
    dev = torch.device(device)
    name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else "CPU"
    return {"device": dev.type, "device_name": name, "threads": torch.get_num_threads(),
            "load_average": [round(v, 2) for v in os.getloadavg()], "torch": torch.__version__}


# ----------------------------------------------------------------------------
# 2. generating one token after a context of n tokens

def generation_cost(n: int, settings: ModernSettings = SETTINGS, device="cpu") -> dict:
    """Time and kept bytes of producing token n + 1: minGRU from its state, attention
    from its cache of n keys and values (both built from a random context)."""
    d, B, L = settings.width, 1, settings.gen_layers
    torch.manual_seed(0)
    rnn = MinGRU(d, d, num_layers=L).to(device)
    attn = nn.ModuleList(CausalSelfAttention(d) for _ in range(L)).to(device)
    x_t = torch.randn(B, d, device=device)
    with torch.no_grad():
        state = torch.randn(L, B, d, device=device)  # (L, B, H): all a recurrent model keeps
        cache = [(torch.randn(B, n, d, device=device), torch.randn(B, n, d, device=device)) for _ in range(L)]

        def rnn_token():
            return rnn.step(x_t, state)

        def attn_token():
            h = x_t
            for layer, kv in zip(attn, cache):
                h, _ = layer.step(h, kv)
            return h
        return {"n": n, "rnn_seconds": best_time(rnn_token, settings.repeats * 5, device),
                "attention_seconds": best_time(attn_token, settings.repeats * 5, device),
                "rnn_bytes": state.nbytes,
                "attention_bytes": sum(K.nbytes + V.nbytes for K, V in cache)}


def run_memory(settings: ModernSettings = SETTINGS, device="cpu", log=print) -> dict:
    rows = []
    for n in settings.contexts:
        rows.append(generation_cost(n, settings, device))
        r = rows[-1]
        log(f"context {n:>6}: minGRU {1e6 * r['rnn_seconds']:8.1f} µs, {r['rnn_bytes']:>9} B kept | "
            f"attention {1e6 * r['attention_seconds']:8.1f} µs, {r['attention_bytes']:>11} B kept")
    return {"rows": rows, **machine(device)}


# ----------------------------------------------------------------------------
# 3. minGRU against GRU on the adding problem

class AddingModel(nn.Module):
    """A recurrent stack read by a linear head at the last step: (B, T, 2) -> (B,)."""

    def __init__(self, kind: str, hidden_size: int = 32, mode: str = "scan"):
        super().__init__()
        self.kind = kind
        if kind == "GRU":
            self.net = None
            self.rnn = nn.GRU(2, hidden_size, batch_first=True)
            self.head = nn.Linear(hidden_size, 1)
        else:
            self.net = MinGRUModel(2, hidden_size, 1, num_layers=2 if kind.endswith("x2") else 1, mode=mode)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.net is not None:
            return self.net(x)[:, -1, 0]  # (B,): the answer after the last step
        out, _ = self.rnn(x)  # (B, T, H)
        return self.head(out[:, -1]).squeeze(-1)


def build_model(kind: str, settings: ModernSettings = SETTINGS, seed: int | None = None,
                mode: str = "scan") -> AddingModel:
    """The model with seeded weights; ``mode`` is how a minGRU runs (the same function)."""
    torch.manual_seed(settings.seed if seed is None else seed)
    return AddingModel(kind, settings.hidden_size, mode)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def train(kind: str, settings: ModernSettings = SETTINGS, *, T: int | None = None, steps: int | None = None,
          seed: int | None = None, device=None, progress: bool | None = False,
          threads: int | None = None) -> tuple[AddingModel, History, float]:
    """Train one model on the adding problem at length T; the MSE on fresh
    sequences every ``eval_every`` steps is ``history.metric("mse")``."""
    T = settings.checkpoint_T if T is None else T
    seed = settings.seed if seed is None else seed
    device = torch.device("cpu") if device is None else torch.device(device)
    with torch_threads(threads):
        # the same function either way; on a CPU the loop trains faster than the scan (timing above)
        model = build_model(kind, settings, seed, "scan" if device.type == "cuda" else "sequential").to(device)
        x_eval, y_eval = adding_batch(settings.eval_size, T, generator=5000 + T, device=device)

        def mse(m):
            return {"mse": ((m(x_eval) - y_eval) ** 2).mean()}

        batches = ((x.to(device), y.to(device)) for x, y in AddingStream(settings.adding_batch, T, seed=100 * seed + T))
        opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
        start = time.perf_counter()
        history = fit(model, batches, nn.functional.mse_loss, opt, steps=steps or settings.steps,
                      clip=settings.clip, eval_fn=mse, eval_every=settings.eval_every, device=device,
                      progress=progress, desc=f"{kind} T={T}")
        return model, history, time.perf_counter() - start


def run_adding(settings: ModernSettings = SETTINGS, out: Path = DATA_DIR, log=print) -> dict:
    runs = {}
    for kind in ADDING_KINDS:
        for T in settings.adding_T:
            for seed in settings.seeds:
                model, history, seconds = train(kind, settings, T=T, seed=seed, threads=1)
                steps, mse = history.metric("mse")
                runs[f"{kind}/{T}/{seed}"] = {"kind": kind, "T": T, "seed": seed, "steps": steps,
                                              "mse": [round(m, 5) for m in mse], "seconds": round(seconds, 1),
                                              "parameters": count_parameters(model)}
                log(f"{kind:>9} T={T:>3} seed {seed}: MSE {mse[-1]:.4f} ({count_parameters(model)} "
                    f"parameters, {seconds:.0f} s)")
                if kind == "minGRU x2" and T == settings.checkpoint_T and seed == settings.seeds[0]:
                    torch.save(model.net.state_dict(), out / "mingru_adding.pt")
    return {"runs": runs}


# ----------------------------------------------------------------------------
# saving and loading

def _write(out: Path, name: str, payload: dict, settings: ModernSettings) -> None:
    payload = {"config": settings.to_dict(), "regenerate": REGENERATE, **payload}
    (out / name).write_text(json.dumps(payload, indent=1) + "\n")


def load(name: str, path: Path = DATA_DIR) -> dict:
    """A saved file: "timing_cpu", "timing_cuda", "memory" or "adding"."""
    file = Path(path) / f"{name}.json"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE}`")
    return json.loads(file.read_text())


def load_streaming_model(path: Path = DATA_DIR, settings: ModernSettings = SETTINGS) -> MinGRUModel:
    """The two-layer minGRU trained on the adding problem at ``checkpoint_T``, eval mode, CPU."""
    file = Path(path) / "mingru_adding.pt"
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE} --only adding`")
    model = MinGRUModel(2, settings.hidden_size, 1, num_layers=2)
    model.load_state_dict(torch.load(file, map_location="cpu", weights_only=True))
    return model.eval()


def main(argv=None) -> None:
    parser = experiment_parser(__doc__, DATA_DIR)
    parser.add_argument("--only", choices=("timing", "memory", "adding"), default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    with command_run(args):
        if args.only in (None, "timing"):
            _write(args.out, f"timing_{device.type}.json", run_timing(SETTINGS, device), SETTINGS)
        if args.only in (None, "memory"):
            _write(args.out, "memory.json" if device.type == "cpu" else f"memory_{device.type}.json",
                   run_memory(SETTINGS, device), SETTINGS)
        if args.only in (None, "adding"):
            _write(args.out, "adding.json", run_adding(SETTINGS, args.out), SETTINGS)

if __name__ == "__main__":
    main()
