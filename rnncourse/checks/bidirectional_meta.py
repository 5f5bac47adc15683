"""What lesson 06's exercises may not call, and their case on torch's 'meta' device.

The exercises build recurrent layers *from LSTM cells*, so torch's cell kernel
(``lstm_cell``, what ``nn.LSTMCell`` calls) stays allowed, while whole layers are
blocked: building ``torch.nn.LSTM``/``RNN``/``GRU`` or rnncourse's layers, torch's
fused layer kernels (``lstm``, cuDNN, MKL-DNN, MPS), and rnncourse's reference
functions (``masking.reverse_padded`` among them).

**The meta case.** A tensor on the 'meta' device has a shape, a dtype and a
device but no values, so code that creates a tensor on the CPU by mistake
(``torch.zeros(B, H)`` without ``device=``) fails there with a device error, on
a grader without a GPU. Code that needs the *values* of ``lengths`` (a Python
loop over ``lengths.tolist()``) cannot run on meta at all; that is no mistake,
so such a case is skipped, never failed.
"""
from __future__ import annotations

import contextlib
import functools
import io
import re
import warnings

import torch
from rnncourse.checks.calling import CheckFailed, learner_blocks
from rnncourse.guard import (
    RECURRENT_KERNELS, REFERENCE_MODELS, BlockedError, FunctionBlocker, Target, blocked, constructors,
    handed_to_learner,
)

# torch's fused *layer* kernels; the cell kernels (lstm_cell, ...) are not matched.
_LAYER_KERNELS = re.compile(r"^(rnn_(tanh|relu)|lstm|gru|_cudnn_rnn|miopen_rnn|mkldnn_rnn(_layer)?"
                            r"|_lstm_mps|quantized_(lstm|gru))$")


@handed_to_learner  # runs inside the learner's call, where the package's own code is switched off
def _layer_kernel(func, args, kwargs, why: str):
    name = (getattr(func, "__name__", "") or str(func)).split(".")[0]
    if _LAYER_KERNELS.match(name):
        return (f"torch's fused recurrent layer kernel '{name}' was called {why}. "
                "torch.nn.LSTM calls it; run the cells you were given step by step instead.")
    return None


def _layer_kernels_off(why: str):
    # guard's torch-function blocker (infrastructure) asks _layer_kernel, then refuses or
    # passes the call on, blocked as before: a mode or a lambda written here would be
    # switched off itself (a partial is C code, and _layer_kernel is handed_to_learner).
    return FunctionBlocker(functools.partial(_layer_kernel, why=why))


LAYER_KERNELS = Target("recurrent layer kernels", _layer_kernels_off)


def _layer_classes() -> list:
    from rnncourse import recurrent
    return [torch.nn.modules.rnn.RNNBase, recurrent.RNNBase]


LAYER_MODULES = constructors(
    "recurrent layers", _layer_classes,
    lambda cls: (f"{cls.__module__}.{cls.__name__} was built {{why}}. This exercise is to build the "
                 "layer from the LSTM cells it is given; whole recurrent layers are switched off."))

ALLOWED_CELLS = (REFERENCE_MODELS, LAYER_KERNELS, LAYER_MODULES)
# What the default blocks (calling.learner_blocks) lift for these exercises: torch's
# recurrent kernels, whose cell kernel (lstm_cell) nn.LSTMCell needs; LAYER_KERNELS
# refuses the layer kernels again.
CELLS_ALLOWED = (RECURRENT_KERNELS,)

_NEEDS_VALUES = ("meta tensors", "Cannot copy out of meta", "data-dependent", "data dependent",
                 "meta device does not", "is not implemented for meta", "NotImplementedError")


def _on_meta(value):
    if isinstance(value, torch.Tensor):
        return value.detach().to("meta")
    if isinstance(value, torch.nn.Module):
        return value.to("meta")
    if isinstance(value, (list, tuple)):
        return type(value)(_on_meta(v) for v in value)
    return value


def on_meta(fn, case, exercise: str, blocks, outputs_of, allow=CELLS_ALLOWED) -> None:
    """Run ``fn`` once more with ``case``'s arguments on the 'meta' device.

    A device error (a tensor made on the CPU meets the inputs) fails the check with
    a message that says so; an error because the code needs the values of a tensor
    (no mistake) skips the case; otherwise ``outputs_of(result, meta_case)`` lists
    ``(what, tensor, shape)`` and each tensor must have that shape and be on meta.
    """
    import dataclasses
    meta = torch.device("meta")
    args = {k: _on_meta(v) for k, v in case.args.items()}
    meta_case = dataclasses.replace(case, device=meta, args=args,
                                    title=f"the first case again, on torch's 'meta' device")
    try:
        with blocked(exercise, learner_blocks(blocks, allow)), warnings.catch_warnings(), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("ignore")
            out = fn(*args.values())
    except BlockedError as e:
        raise CheckFailed(f"{exercise}, {meta_case.label}: {e}") from None
    except Exception as e:  # noqa: BLE001 - the learner's code, classified below
        text = f"{type(e).__name__}: {e}"
        if any(s in text for s in _NEEDS_VALUES):
            return  # the code reads tensor values (a loop over lengths): fine, and not testable on meta
        if "device" in text:
            raise CheckFailed(
                f"{exercise}, {meta_case.label}: your function mixes devices. On the CPU it passed, but "
                f"with every input on another device it raised {text.splitlines()[0]}. A tensor you "
                "create is on the CPU: create it on the inputs' device (torch.zeros(..., device=x.device), "
                "x.new_zeros(...), torch.arange(T, device=x.device)).") from None
        return  # an operation meta does not support: not the learner's mistake
    for what, t, shape in outputs_of(out, meta_case):
        where = f"{exercise}, {meta_case.label}"
        if isinstance(t, torch.nn.utils.rnn.PackedSequence):
            t = t.data
        if not isinstance(t, torch.Tensor):
            raise CheckFailed(f"{where}: {what} should be a torch.Tensor, got {type(t).__name__}.")
        if t.device.type != "meta":
            raise CheckFailed(f"{where}: {what} is on device '{t.device}' but the inputs are on 'meta': "
                              "it was built on the CPU. Create tensors on the inputs' device "
                              "(device=x.device, x.new_zeros(...)) and don't call .cpu().")
        if shape is not None and tuple(t.shape) != tuple(shape):
            raise CheckFailed(f"{where}: expected {what} of shape {tuple(shape)}, got {tuple(t.shape)}.")


def run_blocked(fn, args: dict, exercise: str, blocks):
    """``fn(*args)`` with ``blocks`` in force (no copies, no stderr)."""
    with blocked(exercise, learner_blocks(blocks, CELLS_ALLOWED)), contextlib.redirect_stderr(io.StringIO()):
        return fn(*args.values())
