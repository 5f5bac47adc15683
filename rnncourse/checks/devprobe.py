"""Catch device mistakes on a grader that has no GPU.

The usual device mistake is a tensor made without ``device=``: ``torch.arange(T)``,
``torch.zeros(B, H)``, ``torch.tensor(lengths)``. On the CPU it is invisible; on a
GPU it either fails (a CPU tensor meets a CUDA one) or leaves the result on the
CPU. :func:`probe_devices` replays a case with the learner's inputs on the CPU
while every tensor a factory function makes *without* a device (and with more
than one element's worth of axes: a 0-dim CPU tensor may meet a CUDA one, as on
a real GPU) is moved to the ``meta`` device, a device with shapes and no data.
A tensor that meets the inputs then raises torch's "not on the expected device"
error, and one that reaches the output is on ``meta``: both are the GPU mistake,
seen on the CPU.

What the probe cannot tell apart is reported as *inconclusive* and never costs
points: a meta tensor has no values, so code that reads one (``.item()``,
``.tolist()``) or copies it back (``torch.zeros(B, T).to(x.device)``, which is
correct) stops with an error of its own. Only an output on ``meta`` or a mix of
devices is a failure.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Callable, Sequence

import torch
from torch.overrides import TorchFunctionMode

from rnncourse.checks.calling import CheckFailed
from rnncourse.checks.cases import Case, Placed
from rnncourse.guard import FROM_SCRATCH, BlockedError, Target, blocked, handed_to_learner

META = torch.device("meta")

# torch functions that make a tensor on the default device unless given device=
_FACTORIES = {torch.tensor, torch.as_tensor, torch.zeros, torch.ones, torch.empty, torch.full,
              torch.arange, torch.linspace, torch.eye, torch.rand, torch.randn, torch.randint}
_MIXED = ("is not on the expected device", "Expected all tensors to be on the same device",
          "must be on the same device", "found at least two devices",
          "are not at the same device",          # torch.nn's RNN, LSTM, GRU: input and hidden state
          "move them to the same device")        # rnncourse's models (validation.DeviceError)

FIX = ("Make every new tensor on the inputs' device, e.g. torch.arange(T, device=lengths.device) "
       "or torch.zeros(B, H, dtype=x.dtype, device=x.device) (or x.new_zeros(B, H)); "
       "on a GPU the code as written fails or leaves the result on the CPU.")


def _stray_to_meta(self, func, types, args=(), kwargs=None):
    kwargs = kwargs or {}
    out = func(*args, **kwargs)
    if func in _FACTORIES and kwargs.get("device") is None and isinstance(out, torch.Tensor):
        given = args[0] if args else kwargs.get("data")
        if func in (torch.tensor, torch.as_tensor) and isinstance(given, torch.Tensor):
            return out  # a copy of a tensor keeps that tensor's device
        if out.dim() > 0 and out.device.type == "cpu":
            return out.to(META)
    return out


class _StrayToMeta(TorchFunctionMode):
    """Move what a factory makes without ``device=`` to the meta device.

    It runs inside the learner's call, where the package's own Python code is
    switched off (guard.ANSWER_CODE), so it is marked as the check's own
    (handed_to_learner). It is entered *outside* the block, so the block's
    torch-function modes see the learner's calls first and refuse what they
    must before this mode (unblocked while it runs) passes them on."""

    __torch_function__ = handed_to_learner(_stray_to_meta)


def probe_devices(fn: Callable, case: Case, exercise: str, blocks: Sequence[Target] = FROM_SCRATCH):
    """Call ``fn`` on the case's arguments (CPU) with stray tensors sent to meta.

    Returns the learner's output (to be checked for ``meta`` tensors with
    :func:`assert_not_stray`), or None when the run was inconclusive. Raises
    :class:`CheckFailed` when tensors of two devices met.
    """
    copies = [v.clone() if isinstance(v, torch.Tensor) else v.for_learner() if isinstance(v, Placed)
              else v for v in case.args.values()]
    try:
        with _StrayToMeta(), blocked(exercise, blocks), warnings.catch_warnings(record=True), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("always")
            return fn(*copies)
    except BlockedError:
        return None  # the value cases report it
    except Exception as e:  # noqa: BLE001 - the learner's code, whatever it raised
        if any(text in str(e) for text in _MIXED):
            raise CheckFailed(f"{exercise}, {case.label}: a tensor your function created without "
                              f"device= met the inputs: {FIX}") from None
        return None


def assert_not_stray(out, case: Case, exercise: str, what: Sequence[str]) -> None:
    """Fail if any tensor of ``out`` (a tensor or a tuple of them, named ``what``) is on meta."""
    items = out if isinstance(out, (tuple, list)) else (out,)
    for name, item in zip(what, items):
        if isinstance(item, torch.Tensor) and item.device.type == "meta":
            raise CheckFailed(f"{exercise}, {case.label}: {name} was created without device=, so it "
                              f"would stay on the CPU while the inputs are on a GPU. {FIX}")
