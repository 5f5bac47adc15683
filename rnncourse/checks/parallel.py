"""What lesson 11's checks share: counting the operations a learner's function
issues (how a check tells a scan from a loop), calling it on torch's 'meta'
device, and comparing the gradients of a random cotangent.

A scan's rounds grow like log2 T, a loop's steps like T; every torch function,
method and operator the learner's code calls passes through a
``TorchFunctionMode``, which counts them. At T = 16 and T = 1024 a scan issues
about 2.5 times as many (4 rounds against 10, plus a fixed part), a loop about
64 times, a scan over sqrt(T)-long chunks about 8: :data:`GROWTH` = 3 separates them.
"""
from __future__ import annotations

import dataclasses
import functools

import torch
from torch.overrides import TorchFunctionMode

from rnncourse.checks.core import CheckFailed, call_learner, compare, make_case, validate
from rnncourse.guard import handed_to_learner
from rnncourse.scan import scan_rounds

SHORT, LONG = 16, 1024  # the lengths at which the operations are counted
GROWTH = 3.0            # a scan: (log2 1024 + c) / (log2 16 + c) <= 2.5; a loop: about 64


class _Counter(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = 0

    # It sees the learner's calls, where the package's own code is switched off: it is
    # marked as the check's own, and entered outside the block, so the block's modes
    # refuse what they must before this one (unblocked while it runs) passes a call on.
    @handed_to_learner
    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def operations(fn, args: dict, exercise: str) -> int:
    """How many torch functions, methods and operators ``fn(**args)`` calls, blocked
    like any call of the learner's code."""
    case = make_case(0, 1, 0, torch.float64, torch.device("cpu"), {}, args, title=f"T = {args_T(args)}")
    counter = _Counter()
    with counter:
        call_learner(fn, case, exercise)
    return counter.calls


def args_T(args: dict) -> int:
    return next(v for v in args.values() if isinstance(v, torch.Tensor) and v.dim() == 3).shape[1]


def check_rounds(fn, exercise: str, make_args) -> None:
    """Fail when ``fn``'s operation count grows like T rather than log T."""
    short, long_ = operations(fn, make_args(SHORT), exercise), operations(fn, make_args(LONG), exercise)
    if long_ > GROWTH * max(short, 1):
        raise CheckFailed(
            f"{exercise} is not parallel: it issued {short} tensor operations at T = {SHORT} and {long_} at "
            f"T = {LONG}, {long_ / max(short, 1):.0f} times as many. That grows like T: your function steps "
            f"through time one position at a time (a loop in disguise). A parallel scan combines pairs in "
            f"rounds, each over all steps at once: {scan_rounds(SHORT)} rounds at T = {SHORT}, "
            f"{scan_rounds(LONG)} at T = {LONG}.")


def call_on_meta(fn, case, exercise: str, allow=()):
    """``call_learner`` for a case on the 'meta' device: the same blocks and quiet
    stderr, but no in-place comparison of the inputs (meta tensors hold no values)."""
    blank = dataclasses.replace(case, args={})  # call_learner has nothing to copy or compare
    # the learner gets fresh meta tensors (clones), as call_learner gives copies; a partial
    # (C code), since a wrapper written here would be switched off with the package's code
    on_meta = functools.partial(fn, *[v.clone() if isinstance(v, torch.Tensor) else v for v in case.args.values()])
    return call_learner(on_meta, blank, exercise, allow=allow)


def check_meta(fn, exercise: str, args: dict, what: str, shape: tuple) -> None:
    """Run ``fn`` once with tensors on torch's 'meta' device (shapes, no values): a
    tensor made on the CPU by mistake shows up here, without a GPU."""
    case = make_case(0, 1, 0, torch.float32, torch.device("meta"), {}, args, title="tensors on the 'meta' device")
    try:
        out = call_on_meta(fn, case, exercise)
    except CheckFailed as e:
        raise CheckFailed(f"{e}\nHint: on the 'meta' device (a stand-in for a GPU: shapes, no values) "
                          "every tensor you create must be on the inputs' device (device=a.device, "
                          "torch.zeros_like, new_zeros), and no value can be read with .item() or an if "
                          "on a tensor.") from None
    out = out[0] if isinstance(out, (tuple, list)) and out else out
    if not isinstance(out, torch.Tensor) or out.device.type != "meta" or tuple(out.shape) != shape:
        got = f"{type(out).__name__} on {getattr(out, 'device', '?')}"
        raise CheckFailed(f"{exercise}, {case.label}: {what} should be a tensor of shape {shape} on the "
                          f"inputs' device 'meta', got {got}. Create tensors on the inputs' device.")


def check_gradients(fn, exercise: str, args: dict, reference, names) -> None:
    """Back-propagate a random cotangent through ``fn`` and the reference; the
    gradients of the inputs named must agree (the notebook trains through it)."""
    gen = torch.Generator().manual_seed(99)
    leaves = {k: (v.clone().requires_grad_() if k in names else v) for k, v in args.items()}
    case = make_case(0, 1, 0, torch.float64, torch.device("cpu"), {}, leaves, title="gradients")
    out = call_learner(fn, case, exercise)
    out = validate(out, case, exercise, "the output", tuple(reference(**args).shape))
    if not out.requires_grad:
        raise CheckFailed(f"{exercise}, {case.label}: the output does not depend on the inputs through autograd "
                          "(.detach(), torch.no_grad() or a copy through .tolist()/numpy cut the graph); a "
                          "model could not train through it.")
    cot = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    got = torch.autograd.grad(out, [leaves[n] for n in names], cot, allow_unused=True)
    ref_leaves = {k: (v.clone().requires_grad_() if k in names else v) for k, v in args.items()}
    want = torch.autograd.grad(reference(**ref_leaves), [ref_leaves[n] for n in names], cot)
    for n, g, w in zip(names, got, want):
        if g is None:
            raise CheckFailed(f"{exercise}, {case.label}: no gradient reaches '{n}'.")
        compare(g, w, case, exercise, f"the gradient of '{n}'")


