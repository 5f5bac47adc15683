"""What lesson 10's checks share: extra cases (float16, the meta device, a
gradient case), the meta-device run, the gradient comparison and the wrong
variants of the masked softmax and the context.

The meta device holds shapes, dtypes and devices but no values, so a learner's
function runs there without a GPU: a tensor created on the CPU and mixed in
fails exactly as it would on a GPU grader, and an output moved to the CPU shows.
Code that needs values (``.item()``, ``if mask.all():``) cannot run on it; such
a case is then skipped, since that is no device mistake.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Callable, Sequence

import torch

from rnncourse.checks.core import (
    Case, CheckFailed, Drawn, Plan, build_cases, call_learner, close, distinct_sizes, make_case,
    on_cpu64, shape_text, tolerance,
)
from rnncourse.checks.calling import learner_blocks
from rnncourse.guard import FROM_SCRATCH, BlockedError, Target, blocked

META = torch.device("meta")
CPU = torch.device("cpu")
_DEVICE_ERRORS = ("expected device meta", "same device", "is on device", "device cpu")


def lengths_mask(gen: torch.Generator, B: int, S: int, empty_row: bool = False) -> torch.Tensor:
    """(B, S) bool, True at real positions: random lengths in [1, S], the first row full
    (so S is the padded length), and with ``empty_row`` the last row all padding."""
    lengths = torch.randint(1, S + 1, (B,), generator=gen)
    lengths[0] = S
    if empty_row and B > 1:
        lengths[-1] = 0
    return torch.arange(S)[None, :] < lengths[:, None]  # (B, S)


def sizes_with_ones(gen: torch.Generator, letters: str, names: Sequence[str], ones: Sequence[str]) -> dict:
    """Pairwise-different sizes for ``names`` (drawn for ``letters``), with those in ``ones`` set to 1."""
    drawn = distinct_sizes(gen, letters)
    sizes = {n: drawn[c] for n, c in zip(names, letters)}
    return {**sizes, **{n: 1 for n in ones}}


def all_cases(hidden: bool, plan: Plan, extra: Sequence[tuple]) -> list:
    """The plan's cases, then ``extra`` ones: (seed, dtype, device, Drawn, context) each,
    numbered together."""
    rows = [(c.seed, c.dtype, c.device, c.sizes, c.args, c.context, c.title) for c in build_cases(hidden, plan)]
    for seed, dtype, device, d, ctx in extra:
        rows.append((seed, dtype, device, d.sizes, d.args, {**d.context, **ctx}, d.title))
    return [make_case(i, len(rows), *r) for i, r in enumerate(rows)]


def drawn(build: Callable, seed: int, variant=None) -> Drawn:
    gen = torch.Generator().manual_seed(seed)
    return build(gen, {}) if variant is None else build(gen, {}, variant)


# ----------------------------------------------------------------------------
# the meta device

def run_on_meta(fn: Callable, case: Case, exercise: str, outputs: Sequence[tuple],
                blocks: Sequence[Target] = FROM_SCRATCH) -> None:
    """Run ``fn`` on the meta case; ``outputs``: (what, shape names) of each output
    (one output: the result itself; more: a tuple). Fails on a device mistake only."""
    try:
        result = _call_on_meta(fn, case, exercise, blocks)
    except BlockedError as e:
        raise CheckFailed(f"{exercise}, {case.label}: {e}") from None
    except Exception as e:  # noqa: BLE001: the learner's error, read for a device mistake
        text = f"{type(e).__name__}: {e}"
        if any(s in text for s in _DEVICE_ERRORS):
            raise CheckFailed(
                f"{exercise}, {case.label}: your function mixes devices. The inputs are on torch's "
                "'meta' device (it stands in for a GPU) and a tensor your code made is on the CPU. "
                "Create new tensors on the inputs' device (torch.zeros_like(x), x.new_zeros(...), "
                f"device=x.device). The error was: {text}") from None
        return  # code that needs values (.item(), if ...) cannot run on meta: not a device mistake
    items = list(result) if len(outputs) > 1 and isinstance(result, (tuple, list)) else [result]
    for (what, shape), out in zip(outputs, items):
        if not isinstance(out, torch.Tensor):
            continue  # the ordinary cases report a wrong type
        if out.device.type != "meta":
            raise CheckFailed(f"{exercise}, {case.label}: {what} is on device '{out.device}' but the inputs "
                              "are on torch's 'meta' device (a stand-in for a GPU). Keep the output on the "
                              "inputs' device: don't call .cpu() or .to('cpu'), and create tensors with "
                              "device=x.device.")
        want = tuple(case.sizes[n] if isinstance(n, str) else n for n in shape)
        if tuple(out.shape) != want:
            raise CheckFailed(f"{exercise}, {case.label}: expected {what} of shape "
                              f"{shape_text(shape, case.sizes)}, got {tuple(out.shape)}.")


def _call_on_meta(fn: Callable, case: Case, exercise: str, blocks):
    """call_learner's way of calling, for meta tensors: blocked, warnings and stderr
    swallowed. (Its check that the inputs were not changed in place needs values.)"""
    args = [v.clone() if isinstance(v, torch.Tensor) else v for v in case.args.values()]
    # what call_learner blocks: the package's answer code always, and the exercise's own blocks
    with blocked(exercise, learner_blocks(blocks)), warnings.catch_warnings(record=True), \
            contextlib.redirect_stderr(io.StringIO()):
        warnings.simplefilter("always")
        return fn(*args)


# ----------------------------------------------------------------------------
# gradients

def with_grad(case: Case, names: Sequence[str]) -> list:
    """Make the case's floating tensors ``names`` require grad; return them."""
    return [case.args[n].requires_grad_(True) for n in names]


def compare_grads(outputs: Sequence[torch.Tensor], inputs: Sequence[torch.Tensor], names: Sequence[str],
                  reference: Callable, case: Case, exercise: str, what: str) -> None:
    """Back-propagate a seeded random cotangent through the learner's ``outputs``
    and compare the gradients of ``inputs`` with ``reference(**float64 args)``'s."""
    gen = torch.Generator().manual_seed(case.seed + 7)
    cot = [torch.randn(o.shape, generator=gen, dtype=torch.float64) for o in outputs]
    if not all(o.requires_grad for o in outputs):
        raise CheckFailed(f"{exercise}, {case.label}: {what} carries no gradient back to the inputs "
                          "(was it computed under torch.no_grad(), from .detach() or .data, or with "
                          "numpy?). A model trains through this function, so gradients must flow.")
    got = torch.autograd.grad(outputs, inputs, [c.to(o.dtype) for c, o in zip(cot, outputs)],
                              allow_unused=True)
    args = {k: v.detach().double().requires_grad_(True) if k in names else v
            for k, v in on_cpu64(case).items()}
    ref_out = reference(args)
    want = torch.autograd.grad(ref_out, [args[n] for n in names], cot, allow_unused=True)
    atol, rtol = tolerance(case)
    for name, g, w in zip(names, got, want):
        g = torch.zeros_like(args[name]) if g is None else g.detach().to(CPU, torch.float64)
        w = torch.zeros_like(args[name]) if w is None else w
        if not torch.isfinite(g).all():
            raise CheckFailed(f"{exercise}, {case.label}: the gradient of {what} with respect to "
                              f"{name} contains NaN or inf.")
        if not close(g, w, atol * 10, rtol * 10):
            err = float((g - w).abs().max())
            raise CheckFailed(f"{exercise}, {case.label}: the values are right but the gradient with "
                              f"respect to {name} is wrong (largest error {err:.3g}): something in "
                              "the computation is cut off from autograd or written in place.")


# ----------------------------------------------------------------------------
# wrong variants shared by the exercises (float64 CPU inputs)

def softmax_variants(scores: torch.Tensor, mask: torch.Tensor) -> dict:
    """phrase -> weights of a wrong masked softmax over the last axis."""
    mask = mask.expand(scores.shape)
    plain = torch.softmax(scores, dim=-1)
    v = {
        "the mask is applied after the softmax (softmax over every position, then the padding "
        "set to 0): the weights of the real positions no longer sum to 1. Mask the scores first": plain * mask,
        "the padding is not masked at all (a plain softmax over every position)": plain,
    }
    for d in range(scores.dim() - 1):
        filled = scores.masked_fill(~mask, float("-inf"))
        v[f"the softmax runs over the wrong axis (dim={d}) instead of the source positions (the "
          "last axis)"] = torch.nan_to_num(torch.softmax(filled, dim=d), nan=0.0)
        v[f"the softmax runs over the wrong axis (dim={d}) and the mask is applied after it"] = \
            torch.softmax(scores, dim=d) * mask
    return v


def context_variants(weights: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> dict:
    """phrase -> a wrong context (B, Hk) from right weights (B, S) and keys (B, S, Hk)."""
    m = mask.to(keys.dtype)
    return {
        "the context is the plain mean of the keys (the weights are not used)":
            (keys * m[..., None]).sum(1) / m.sum(1, keepdim=True).clamp_min(1),
        "the context is the sum of the keys over the source positions, unweighted":
            (keys * m[..., None]).sum(1),
        "the context is the key at the position of the largest weight (a hard argmax, not the weighted sum)":
            keys[torch.arange(keys.shape[0]), weights.argmax(-1)],
    }


def context_shape_hints(B: int, S: int, Hk: int) -> dict:
    return {
        (B, S): "summed over the features axis instead of the source positions: the context "
                "sums the keys over S, keeping their Hk features",
        (S, Hk): "summed over the batch axis instead of the source positions",
        (B, B, Hk): "weights @ keys with weights (B, S) multiplies every sequence's weights with "
                    "every sequence's keys; use weights.unsqueeze(1) @ keys, (B, 1, S) @ (B, S, Hk), "
                    "then squeeze(1)",
        (B, 1, Hk): "drop the middle axis with .squeeze(1)",
        (Hk,): "the batch axis is missing",
    }


def uniform_weights(mask: torch.Tensor, dtype=torch.float64) -> torch.Tensor:
    m = mask.to(dtype)
    return m / m.sum(-1, keepdim=True).clamp_min(1)


def keys_ignored(fn: Callable, case: Case, exercise: str, weights: torch.Tensor, keys_arg: str,
                 pick: Callable) -> bool:
    """Evidence for weights that do not depend on the encoder states: call ``fn`` again
    with other keys (same query and mask) and see whether the weights stay the same."""
    gen = torch.Generator().manual_seed(case.seed + 99)
    other = dict(case.args)
    k = case.args[keys_arg]
    other[keys_arg] = (torch.randn(k.shape, generator=gen, dtype=torch.float64) * 2).to(k.device, k.dtype)
    probe = make_case(case.index, case.total, case.seed, case.dtype, case.device, case.sizes, other,
                      case.context, case.title)
    try:
        again = pick(call_learner(fn, probe, exercise))
    except (CheckFailed, TypeError, ValueError, IndexError):
        return False
    if not isinstance(again, torch.Tensor) or again.shape != weights.shape:
        return False
    atol, rtol = tolerance(case)
    return close(again, weights, atol, rtol)


KEYS_IGNORED = ("your weights stay the same when the encoder states (the keys) change: the scores "
                "never read the keys, so the decoder cannot choose where to look. Each score must "
                "compare the query with one key (a widely copied PyTorch tutorial computed the "
                "weights from the decoder's own state and input only).")


def all_finite(t: torch.Tensor) -> bool:
    return bool(torch.isfinite(t.detach()).all())
