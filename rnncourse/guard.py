"""Block what a learner's from-scratch exercise must not call, while it runs.

One mechanism, :func:`blocked`, takes its targets from the check:

* :data:`REFERENCE_MODELS`: rnncourse's own models and ``functional`` cells
  (each of their forwards asks :func:`check_reference_allowed` first: they are
  plain tensor ops, so nothing else could tell them from the learner's code);
* :data:`RECURRENT_KERNELS`: torch's fused recurrent kernels, caught with a
  ``TorchFunctionMode``; every route to them (``torch.nn.LSTM``,
  ``torch._VF.lstm``, ``torch.lstm_cell``, ``torch.ops.aten.gru_cell``) passes
  through it;
* :data:`AUTOGRAD`: ``.backward()``, ``torch.autograd.grad``/``backward`` and
  what is built on them (``torch.autograd.functional``, ``torch.func.vjp``);
* :func:`attributes` (e.g. :data:`TORCH_CLIPPING`): module attributes replaced
  by a function that raises, for the duration of the block;
* :func:`constructors`: classes whose ``__init__`` raises (building a module).

Every target is undone when the block ends, also when the learner's code
raised, and blocks nest (an inner block's end leaves the outer one in force).
The reference models' own tests use :func:`fused_kernels_blocked` to prove the
models never call a fused kernel.
"""
from __future__ import annotations

import contextlib
import importlib
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence

import torch
from torch.overrides import TorchFunctionMode

# Names of the fused recurrent ops (the overload suffix, e.g. ".default", is cut first).
_FUSED = re.compile(
    r"^(rnn_(tanh|relu)(_cell)?|lstm(_cell)?|gru(_cell)?|_thnn_fused_(lstm|gru)_cell"
    r"|_cudnn_rnn|miopen_rnn|mkldnn_rnn(_layer)?|_lstm_mps|quantized_(lstm|gru|rnn_\w+)(_cell)?)$"
)


class BlockedError(RuntimeError):
    """A blocked function, kernel, model or constructor was called."""


@dataclass(frozen=True)
class Target:
    """One thing to block. ``enter(why)`` returns the context manager that blocks
    it; ``why`` completes "... was called <why>" in the error."""
    name: str
    enter: Callable[[str], contextlib.AbstractContextManager]


# ----------------------------------------------------------------------------
# the reference models: a stack of reasons, non-empty while blocked

_reference_block: list = []


def check_reference_allowed(model: str) -> None:
    """Raise :class:`BlockedError` if the reference models are blocked right now."""
    if _reference_block:
        raise BlockedError(
            f"rnncourse.{model} was called {_reference_block[-1]}. The reference models "
            "are what your code is checked against, so they are switched off while it "
            "runs: implement the computation yourself."
        )


@contextlib.contextmanager
def _references_off(why: str) -> Iterator[None]:
    _reference_block.append(why)
    try:
        yield
    finally:
        _reference_block.pop()


# ----------------------------------------------------------------------------
# torch functions, caught on their way through a TorchFunctionMode

class _FunctionBlocker(TorchFunctionMode):
    """Raise ``refuse(func)``'s message for every torch function it names."""

    def __init__(self, refuse: Callable[[object], str | None]):
        super().__init__()
        self.refuse = refuse

    def __torch_function__(self, func, types, args=(), kwargs=None):
        message = self.refuse(func)
        if message:
            raise BlockedError(message)
        return func(*args, **(kwargs or {}))


def _op_name(func) -> str:
    name = getattr(func, "__name__", "") or str(func)
    return name.split(".")[0]


def _kernels_off(why: str):
    def refuse(func):
        name = _op_name(func)
        if _FUSED.match(name):
            return (f"torch's fused recurrent kernel '{name}' was called {why}. "
                    "torch.nn.RNN/LSTM/GRU and their cells call it; write the step from "
                    "tensor operations (matmul, +, tanh, sigmoid, ...) instead.")
        return None
    return _FunctionBlocker(refuse)


def _autograd_off(why: str):
    entries = (torch.Tensor.backward, torch.autograd.grad, torch.autograd.backward)

    def refuse(func):
        if func in entries:
            return (f"autograd ({getattr(func, '__qualname__', func)}) was called {why}. "
                    "This exercise is to derive the gradients by hand: compute them from the "
                    "states with tensor operations, without .backward() or torch.autograd.grad "
                    "(the check compares your result with autograd's).")
        return None
    return _FunctionBlocker(refuse)


# ----------------------------------------------------------------------------
# attributes and constructors, replaced for the block and put back after it

_MISSING = object()


@contextlib.contextmanager
def _replaced(pairs: Sequence[tuple]) -> Iterator[None]:
    """Set ``owner.attr = value`` for each (owner, attr, value); restore on exit
    (an attribute a class only inherited is deleted again, not copied down)."""
    saved = []
    try:
        for owner, attr, value in pairs:
            old = owner.__dict__.get(attr, _MISSING) if isinstance(owner, type) else getattr(owner, attr)
            saved.append((owner, attr, old))
            setattr(owner, attr, value)
        yield
    finally:
        for owner, attr, old in reversed(saved):
            if old is _MISSING:
                delattr(owner, attr)
            else:
                setattr(owner, attr, old)


def attributes(name: str, paths: Sequence[str], message: Callable[[str], str]) -> Target:
    """Block the functions at ``paths`` ("package.module:attr"); calling one raises
    ``message(attr)``. Paths that this torch lacks are skipped. Patching the module
    where a function is looked up also catches a learner who imported it earlier
    (e.g. clip_grad_norm_ looks up its helpers at call time)."""
    def enter(why: str):
        pairs = []
        for path in paths:
            module, attr = path.split(":")
            owner = importlib.import_module(module)
            if hasattr(owner, attr):
                pairs.append((owner, attr, _refusal(message(attr), why)))
        return _replaced(pairs)
    return Target(name, enter)


def _refusal(text: str, why: str):
    def refuse(*args, **kwargs):
        raise BlockedError(text.replace("{why}", why))
    return refuse


def constructors(name: str, classes: Callable[[], Sequence[type]],
                 message: Callable[[type], str]) -> Target:
    """Building an instance of any of ``classes()`` (or a subclass that does not
    define its own ``__init__`` before reaching theirs) raises ``message(cls)``,
    where ``cls`` is the class being built. ``classes`` is called when the block
    starts, so that importing them costs nothing until a check needs them."""
    def enter(why: str):
        def refuse(self, *args, **kwargs):
            raise BlockedError(message(type(self)).replace("{why}", why))
        return _replaced([(cls, "__init__", refuse) for cls in classes()])
    return Target(name, enter)


REFERENCE_MODELS = Target("reference models", _references_off)
RECURRENT_KERNELS = Target("recurrent kernels", _kernels_off)
AUTOGRAD = Target("autograd", _autograd_off)


def _clipping_message(attr: str) -> str:
    name = ("torch.nn.utils.clip_grad_norm_ (or one of torch's clipping helpers)"
            if attr.startswith("_") else f"torch.nn.utils.{attr}")
    return (f"{name} was called. This exercise is to write gradient clipping yourself; torch's "
            "version is what yours is compared with, so it is switched off while your function "
            "runs. Compute the global norm with tensor operations and scale the gradients in place.")


TORCH_CLIPPING = attributes(
    "torch's gradient clipping",
    # clip_grad_norm_ looks its helpers up in its module at call time, so patching
    # them there also catches a learner who imported clip_grad_norm_ before the check
    ["torch.nn.utils:clip_grad_norm_", "torch.nn.utils:clip_grad_norm",
     "torch.nn.utils:clip_grads_with_norm_", "torch.nn.utils:get_total_norm",
     "torch.nn.utils.clip_grad:_get_total_norm", "torch.nn.utils.clip_grad:_clip_grads_with_norm_",
     "torch.nn.utils.clip_grad:clip_grad_norm_", "torch.nn.utils.clip_grad:clip_grad_norm"],
    _clipping_message)

# What a from-scratch exercise runs without, unless its check says otherwise.
FROM_SCRATCH = (REFERENCE_MODELS, RECURRENT_KERNELS)


def recurrent_module_classes() -> list:
    """The base classes of torch.nn's and rnncourse's recurrent modules and cells."""
    from rnncourse import cells, peephole, recurrent
    return [torch.nn.modules.rnn.RNNBase, torch.nn.modules.rnn.RNNCellBase,
            recurrent.RNNBase, cells._CellBase, peephole.PeepholeLSTMCell]


@contextlib.contextmanager
def blocked(exercise: str, targets: Sequence[Target] = FROM_SCRATCH) -> Iterator[None]:
    """Block every target in ``targets`` while the learner's code for ``exercise``
    runs; undo them all on the way out, whatever happened inside."""
    why = f"while checking your '{exercise}', a from-scratch exercise"
    with contextlib.ExitStack() as stack:
        for target in targets:
            stack.enter_context(target.enter(why))
        yield


@contextlib.contextmanager
def fused_kernels_blocked(why: str = "inside a block that forbids it") -> Iterator[None]:
    """Inside the block, any fused recurrent kernel raises :class:`BlockedError`."""
    with RECURRENT_KERNELS.enter(why):
        yield
