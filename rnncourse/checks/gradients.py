"""Gradients flow: a random cotangent back-propagated through the learner's output.

Where a model is later trained through an exercise's output (an embedding, a
cell step, a forward), right values are not enough: an output computed under
``torch.no_grad()``, a state ``.detach()``-ed between steps, a ``.data`` read or
an in-place write that breaks the backward gives the right numbers and a model
that cannot learn. A plan that declares ``gradient=reference`` gets, on its
first drawn case, one more call of the learner's function on float64 CPU copies
of the arguments that require grad. If its values match ``reference(args)``
(the same structure of tensors, by autograd through the package's equations),
a seeded random cotangent is back-propagated through both and the gradients of
every floating-point argument are compared. When the values are wrong, nothing
is said here: the check's own comparison names the mistake.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Callable

import torch

from rnncourse.checks.cases import Case, on_cpu64
from rnncourse.guard import blocked

ATOL, RTOL = 1e-8, 1e-6  # float64 throughout; any correct order of operations passes
_KEEP = ("Keep every step inside autograd's graph: no torch.no_grad(), .detach(), .data, "
         ".item() or NumPy round trips, and no in-place writes (+=, .mul_(), x[...] = ...) into "
         "tensors the backward still needs.")


def _flat(out) -> list | None:
    """The tensors of a result, in order (tuples and lists flattened); None if anything else."""
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, (tuple, list)):
        items = []
        for item in out:
            inner = _flat(item)
            if inner is None:
                return None
            items += inner
        return items
    return None


def _close(a: torch.Tensor, b: torch.Tensor, atol=ATOL, rtol=RTOL) -> bool:
    if a.device.type != "cpu":  # on another device: the validators say so
        return False
    a = a.detach().to(torch.float64)
    return a.shape == b.shape and bool(((a - b.detach()).abs() <= atol + rtol * b.detach().abs()).all())


def gradient_label(case: Case) -> str:
    sizes = ", ".join(f"{k}={v}" for k, v in case.sizes.items())
    return (f"case {case.index + 1} of {case.total} with gradients (seed {case.seed}, float64 on cpu; "
            f"{sizes}; a random cotangent back-propagated)")


def gradient_run(fn, case: Case, exercise: str, blocks, reference: Callable) -> str | None:
    """The problem with the gradients of ``fn`` on ``case``, or None (also when the
    values are wrong: that is the value comparison's to say)."""
    a = on_cpu64(case)
    names = [k for k, v in a.items() if isinstance(v, torch.Tensor) and v.is_floating_point()]
    mine = {k: (v.clone().requires_grad_(True) if k in names else v) for k, v in a.items()}
    theirs = {k: (v.clone().requires_grad_(True) if k in names else v) for k, v in a.items()}
    try:
        with torch.enable_grad(), blocked(exercise, blocks), warnings.catch_warnings(), \
                contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            out = fn(*mine.values())
    except Exception:  # noqa: BLE001 - the value cases report the learner's errors
        return None
    with torch.enable_grad():
        expected = _flat(reference(theirs))
    got = _flat(out)
    if got is None or len(got) != len(expected) or not all(
            g.is_floating_point() and _close(g, w) for g, w in zip(got, expected)):
        return None  # the values are wrong: the check's comparison says how
    where = f"{exercise}, {gradient_label(case)}: the values are right, but nothing can be trained through them"
    gen = torch.Generator().manual_seed(case.seed + 1000)
    cotangents = [torch.randn(w.shape, generator=gen, dtype=torch.float64) for w in expected]
    kept = [i for i, g in enumerate(got) if g.requires_grad]
    if not kept:
        return (f"{where}: the result is not connected to the inputs in autograd's graph (computed "
                f"under torch.no_grad(), from .data, or detached). {_KEEP}")
    for i, g in enumerate(got):
        if not g.requires_grad:
            return (f"{where}: item {i} of the result is cut off from autograd's graph "
                    f"(detached, .data, or no_grad). {_KEEP}")
    leaves = [mine[k] for k in names]
    try:
        grads = torch.autograd.grad([got[i] for i in kept], leaves, [cotangents[i].to(got[i].dtype) for i in kept],
                                    allow_unused=True)
    except RuntimeError as e:
        return (f"{where}: back-propagating through your result fails ({str(e).splitlines()[0][:160]}). "
                f"{_KEEP}")
    want = torch.autograd.grad(expected, [theirs[k] for k in names], cotangents, allow_unused=True)
    for name, g, w in zip(names, grads, want):
        w = torch.zeros_like(theirs[name]) if w is None else w
        if g is None:
            if bool((w != 0).any()):
                return (f"{where}: no gradient reaches '{name}' through your result (its path is "
                        f"detached or computed without autograd). {_KEEP}")
            continue
        if not _close(g, w, atol=1e-7, rtol=1e-5):
            err = float((g.detach().to(torch.float64) - w).abs().max())
            return (f"{where}: the gradient with respect to '{name}' is wrong (largest error {err:.3g}): "
                    f"part of the computation is cut off from autograd, e.g. a state detached between "
                    f"steps. {_KEEP}")
    return None
