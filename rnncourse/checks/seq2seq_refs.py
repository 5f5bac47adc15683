"""What lesson 09's checks compare with: the toy decoders they hand to the
learner's decoding functions, exhaustive search, and the known wrong variants
(each written out, so that a check can name the one a wrong answer matches).

Everything here is single-source and looped on purpose: it is the plain
statement of each variant, not a fast implementation (the package's is
:mod:`rnncourse.decoding`).
"""
from __future__ import annotations

import itertools
import math
from typing import Callable, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from rnncourse.guard import handed_to_learner


class DeviceMix(RuntimeError):
    """The step was given tokens on another device than its state."""


def toy_decoder(V: int, H: int, gen: torch.Generator, dtype, device, sharp: float = 2.0,
                eos: Optional[int] = None, drift: bool = False):
    """A small recurrent next-token model from plain tensor ops, and its state layout.

    ``step(y_prev (N,), h (N, H')) -> (logits (N, V), h)``. Rows are independent.
    With ``drift`` the state carries a clock and a rate in its last two columns
    and the EOS logit grows by ``clock * rate``: rows end at different steps.
    """
    E = (torch.randn(V, H, generator=gen, dtype=torch.float64)).to(device, dtype)
    W = (torch.randn(H, H, generator=gen, dtype=torch.float64) / math.sqrt(H)).to(device, dtype)
    O = (torch.randn(H, V, generator=gen, dtype=torch.float64) * sharp / math.sqrt(H)).to(device, dtype)

    def step(y, h):
        if not isinstance(y, torch.Tensor) or y.dim() != 1 or y.is_floating_point():
            raise TypeError(f"step expects y_prev as a 1-D integer tensor (N,), got "
                            f"{getattr(y, 'dtype', type(y).__name__)} of shape {tuple(getattr(y, 'shape', ()))}")
        if y.device != h.device:
            raise DeviceMix(f"y_prev is on '{y.device}' but the state on '{h.device}'")
        if y.shape[0] != h.shape[0]:
            raise ValueError(f"step got {y.shape[0]} tokens for {h.shape[0]} state rows")
        core = h[:, :H]
        core = torch.tanh(F.embedding(y, E) + core @ W)  # (N, H)
        z = core @ O  # (N, V)
        if not drift:
            return z, core
        clock, rate = h[:, H:H + 1], h[:, H + 1:H + 2]
        z = torch.cat([z[:, :eos], z[:, eos:eos + 1] + clock * rate, z[:, eos + 1:]], dim=1)
        return z, torch.cat([core, clock + 1, rate], dim=1)
    return step


# ---------------------------------------------------------------------------
# the learner's tensors must be created on the inputs' device

_FACTORIES = ("full", "zeros", "ones", "empty", "tensor", "arange", "as_tensor", "rand", "randn",
              "randint", "eye", "linspace")


def _default_to_meta(self, func, types, args=(), kwargs=None):
    kwargs = dict(kwargs or {})
    if getattr(func, "__name__", "") in _FACTORIES and getattr(func, "__module__", "") == "torch" \
            and kwargs.get("device") is None and not (args and isinstance(args[0], torch.Tensor)
                                                       and func.__name__ in ("as_tensor", "tensor")):
        out = func(*args, **{**kwargs, "device": "meta"})
        # a 0-dim CPU tensor may meet tensors of any device (torch allows it): leave those be
        if not (isinstance(out, torch.Tensor) and out.dim() == 0):
            return out
    return func(*args, **kwargs)


class DefaultDeviceTrap(TorchFunctionMode):
    """Tensors that torch's factory functions create without ``device=`` land on
    the 'meta' device while the learner's code runs. On a grader without a GPU
    this shows what a GPU would: a tensor made on the default device (the CPU)
    next to inputs on another device.

    Enter it *outside* the block of ``call_learner``: the block's modes then see
    the learner's calls first. Its own code runs inside the learner's call, where
    the package's Python code is switched off, so it is marked as the check's own
    (``handed_to_learner``: unblocked while it runs)."""

    __torch_function__ = handed_to_learner(_default_to_meta)


def on_meta(value) -> bool:
    if isinstance(value, torch.Tensor):
        return value.device.type == "meta"
    if isinstance(value, (tuple, list)):
        return any(on_meta(v) for v in value)
    return False


def device_error(err: BaseException) -> bool:
    """Did the learner's code fail by mixing devices (not by asking a meta tensor for data)?"""
    text = str(err)
    return isinstance(err, DeviceMix) or "expected device" in text or "two devices" in text \
        or "same device" in text


# ---------------------------------------------------------------------------
# decoder inputs and targets

def io_reference(targets, bos, eos, pad, variant: str = "right"):
    """(tgt_in, tgt_out, mask) of ``targets`` as the exercise states, or a wrong variant."""
    B = len(targets)
    extra = 0 if variant in ("no_eos_no_extra",) else 1
    T = max(len(y) for y in targets) + extra
    tin = torch.full((B, T), pad, dtype=torch.int64)
    tout = torch.full((B, T), pad, dtype=torch.int64)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for b, y in enumerate(targets):
        y = y.cpu().tolist()
        n = len(y)
        x_in, x_out, m = [bos] + y, y + [eos], n + 1
        if variant == "not_shifted":
            x_in = y + [eos]
        elif variant == "no_eos":
            x_out = y + [pad]
            m = n
        elif variant == "no_eos_no_extra":
            x_in, x_out, m = [bos] + y[:-1], y, n
        elif variant == "no_bos":
            x_in = y + [pad]
        elif variant == "wrong_way":
            x_in, x_out = y + [eos], [bos] + y
        elif variant == "mask_without_eos":
            m = n
        elif variant == "mask_inverted":
            pass
        tin[b, :len(x_in)] = torch.tensor(x_in[:T], dtype=torch.int64)
        tout[b, :len(x_out)] = torch.tensor(x_out[:T], dtype=torch.int64)
        mask[b, :m] = True
    if variant == "mask_inverted":
        mask = ~mask
    return tin, tout, mask


IO_VARIANTS = {
    "the decoder inputs are not shifted: tgt_in holds the targets themselves, so at each step "
    "the decoder would read the very token it must predict": "not_shifted",
    "EOS is missing from the targets (tgt_out ends with padding, so the model never learns to stop)": "no_eos",
    "BOS is missing from the decoder inputs (tgt_in starts with the first target token)": "no_bos",
    "the shift goes the wrong way (tgt_out starts with BOS)": "wrong_way",
    "the mask leaves out the EOS position (it must cover the n targets and the EOS)": "mask_without_eos",
    "the mask is inverted (True must mark the real positions, False the padding)": "mask_inverted",
}


# ---------------------------------------------------------------------------
# greedy decoding, single rows, and its wrong variants

def greedy_reference(step, h0, max_len, bos, eos, pad, variant: str = "right") -> torch.Tensor:
    """tokens (B, L) int64 on the CPU."""
    B = h0.shape[0]
    y = torch.full((B,), bos, dtype=torch.int64, device=h0.device)
    h, done, out = h0, torch.zeros(B, dtype=torch.bool, device=h0.device), []
    for _ in range(max_len):
        z, h = step(y if variant != "bos_every_step" else torch.full_like(y, bos), h)
        nxt = z.argmax(-1)
        emitted = nxt if variant == "no_pad_after_eos" else torch.where(done, torch.full_like(nxt, pad), nxt)
        out.append(emitted)
        ended = nxt == eos
        done = done | ended
        y = nxt
        if variant == "stop_at_first_eos" and bool(ended.any()):
            break
        if variant != "all_steps" and bool(done.all()):
            break
    tokens = torch.stack(out, 1).cpu()
    if variant == "with_bos":
        tokens = torch.cat([torch.full((B, 1), bos, dtype=torch.int64), tokens], 1)
    return tokens


GREEDY_VARIANTS = {
    "the whole batch stops at the first EOS that any sequence emits (each sequence must stop "
    "at its own EOS while the others go on)": "stop_at_first_eos",
    "a sequence keeps its generated tokens after its EOS (they must be replaced by pad)": "no_pad_after_eos",
    "the loop always runs max_len steps, even after every sequence has emitted EOS": "all_steps",
    "BOS is fed at every step instead of the previous token": "bos_every_step",
    "BOS is included as the first output token": "with_bos",
}


# ---------------------------------------------------------------------------
# beam search on one source: the stated algorithm and its wrong variants

Hyp = Tuple[float, List[int]]  # (log p, tokens)


def beam_reference(step, h0, K, max_len, bos, eos, alpha, variant: str = "right"):
    """(tokens list, normalised score) for one source (h0 (1, H'))."""
    live: List[Tuple[float, List[int], torch.Tensor]] = [(0.0, [], h0)]
    if variant == "duplicate_start":
        live = [(0.0, [], h0) for _ in range(K)]
    finished: List[Hyp] = []
    k = K
    for t in range(1, max_len + 1):
        cands = []
        expand = live[:1] if variant == "one_hypothesis" else live
        for score, seq, h in expand:
            y = torch.tensor([seq[-1] if seq else bos], dtype=torch.int64, device=h0.device)
            z, h2 = step(y, h)
            logp = torch.log_softmax(z.double(), -1)[0].cpu()
            for v in range(logp.shape[0]):
                cands.append((score + float(logp[v]), seq + [v], h2))
        cands.sort(key=lambda c: -c[0])
        width = K if variant == "no_shrink" else k
        kept, live = cands[:width], []
        for c in kept:
            if c[1][-1] == eos:
                if variant != "drop_finished":
                    finished.append((c[0], c[1]))
                if variant != "no_shrink":
                    k -= 1
            else:
                live.append(c)
        if not live:
            break
    pool = []
    for s, seq in finished:
        a = 0.0 if variant in ("no_norm", "norm_unfinished_only") else alpha
        pool.append((s / len(seq) ** a, seq))
    for s, seq, _ in live:
        a = 0.0 if variant == "no_norm" else alpha
        pool.append((s / len(seq) ** a, seq))
    if not pool:
        return [], float("-inf")
    best = max(pool, key=lambda p: p[0])
    return best[1], best[0]


BEAM_VARIANTS = {
    "finished hypotheses are dropped (a hypothesis that ends with EOS must be kept until the end)":
        "drop_finished",
    "no length normalisation is applied (score / n**alpha)": "no_norm",
    "the length normalisation is applied to the unfinished hypotheses only": "norm_unfinished_only",
    "each step expands only the best hypothesis instead of every hypothesis in the beam": "one_hypothesis",
    "the beam starts with beam_width copies of BOS, so it fills with duplicates": "duplicate_start",
    "the beam does not shrink when a hypothesis finishes (the exercise's beam keeps "
    "beam_width minus the finished ones)": "no_shrink",
}


def exhaustive(step, h0, V, max_len, bos, eos, alpha) -> Tuple[List[int], float]:
    """The best normalised score over every output: EOS-terminated, or max_len long without EOS."""
    best: Tuple[float, List[int]] = (float("-inf"), [])
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                continue
            h, y, total = h0, torch.tensor([bos], device=h0.device), 0.0
            for tok in seq:
                z, h = step(y, h)
                total += float(torch.log_softmax(z.double(), -1)[0, tok])
                y = torch.tensor([tok], device=h0.device)
            if total / n ** alpha > best[0]:
                best = (total / n ** alpha, list(seq))
    return best[1], best[0]


def table_step(table: torch.Tensor, device=None) -> Callable:
    """A step that reads next-token log-probabilities from ``table`` (depth, V) by
    position only; the state is the position (N, 1)."""
    table = table.to(device)

    def step(y, h):
        t = h[:, 0].long().clamp(max=table.shape[0] - 1)
        return table[t], h + 1
    return step


def prefix_table_step(table: dict, tokens: tuple, device=None, dtype=torch.float64) -> Callable:
    """A step that reads p(next | prefix) from ``table`` (prefix string -> probabilities over
    ``tokens``, the token of id i is ``tokens[i]``), as the lesson's beam-search tree does.
    The state (N, 2) holds the prefix's index and whether the first step has run (the
    first token read, BOS, is not part of the prefix)."""
    prefixes = sorted(table, key=lambda p: (len(p), p))
    rows = torch.tensor([table[p] for p in prefixes], dtype=torch.float64).log().to(device, dtype)
    index = {p: i for i, p in enumerate(prefixes)}

    def step(y, h):
        out_rows, states = [], []
        for yi, (pi, started) in zip(y.tolist(), h.tolist()):
            prefix = prefixes[int(pi)] + (tokens[yi] if started else "")
            i = index.get(prefix, 0)  # a prefix past the table's depth: any row (never scored)
            out_rows.append(i)
            states.append([float(i), 1.0])
        return rows[torch.tensor(out_rows, device=rows.device)], torch.tensor(states, dtype=h.dtype, device=h.device)
    return step
