"""Block what a learner's from-scratch exercise must not call, while it runs.

One mechanism, :func:`blocked`, takes its targets from the check:

* :data:`REFERENCE_MODELS`: rnncourse's own models and ``functional`` cells
  (each of their forwards asks :func:`check_reference_allowed` first: they are
  plain tensor ops, so nothing else could tell them from the learner's code);
* :data:`RECURRENT_KERNELS`: torch's fused recurrent kernels, caught with a
  ``TorchFunctionMode``; every route to them (``torch.nn.LSTM``,
  ``torch._VF.lstm``, ``torch.lstm_cell``, ``torch.ops.aten.gru_cell``) passes
  through it;
* :data:`ANSWER_CODE`: every Python function of the rnncourse package except its
  infrastructure (this module, the checks' core, device and path helpers), caught
  with a profile hook on the code object, so a function imported into the
  learner's namespace before the check (``from rnncourse.checks.gru import
  gru_variant``) is refused too: the functional steps, the models, the data
  helpers, the explorations and the checks' own reference and variant helpers;
* :data:`AUTOGRAD`: every automatic-differentiation route: ``.backward()``,
  ``torch.autograd.grad``/``backward``, ``torch.autograd.functional``, the
  ``torch.func`` transforms (grad, vjp, jvp, jacrev, jacfwd, hessian, linearize),
  forward-mode AD (``torch.autograd.forward_ad``, dual tensors), and any tensor
  that requires grad (so no graph exists for a hand-made walk over ``grad_fn``);
* :func:`attributes` (e.g. :data:`TORCH_CLIPPING`): module attributes replaced
  by a function that raises, for the duration of the block;
* :func:`constructors`: classes whose ``__init__`` raises (building a module).

Every target is undone when the block ends, also when the learner's code
raised, and blocks nest (an inner block's end leaves the outer one in force).
A refusal is recorded as well as raised (``with blocked(...) as refusals``):
if the learner's code catches it and carries on (``try: ... except Exception:``),
the check fails the call all the same. :func:`handed_to_learner` wraps a function the check itself hands
to the learner's code (a scoring function, a model to call): while it runs,
nothing is blocked.
The reference models' own tests use :func:`fused_kernels_blocked` to prove the
models never call a fused kernel.
"""
from __future__ import annotations

import contextlib
import functools
import importlib
import os
import re
import sys
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
# refusals: raised, and recorded so that a learner who catches one still fails

_active: list = []      # one list of refusals per open block, innermost last
_suspended: list = []   # non-empty while a function handed to the learner runs


def _refuse(message: str):
    """Record ``message`` in every open block and raise it."""
    for refusals in _active:
        refusals.append(message)
    raise BlockedError(message)


def handed_to_learner(fn: Callable) -> Callable:
    """``fn`` as a function a check may hand to the learner's code (a scoring
    function, a model the exercise calls): while it runs, nothing is blocked,
    so it may use the reference models and the checks' helpers itself."""
    @functools.wraps(fn)
    def unblocked(*args, **kwargs):
        _suspended.append(fn)
        try:
            return fn(*args, **kwargs)
        finally:
            _suspended.pop()
    return unblocked


# ----------------------------------------------------------------------------
# the reference models: a stack of reasons, non-empty while blocked

_reference_block: list = []


def check_reference_allowed(model: str) -> None:
    """Raise :class:`BlockedError` if the reference models are blocked right now."""
    if _reference_block and not _suspended:
        _refuse(
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

class FunctionBlocker(TorchFunctionMode):
    """A TorchFunctionMode that raises ``refuse(func, args, kwargs)``'s message for every
    torch function it names (None lets the call through); a check builds its own
    :class:`Target` from it, as lesson 06 does for the layer kernels."""

    def __init__(self, refuse: Callable[..., str | None]):
        super().__init__()
        self.refuse = refuse

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if not _suspended:
            message = self.refuse(func, args, kwargs)
            if message:
                _refuse(message)
        return func(*args, **kwargs)


def _op_name(func) -> str:
    name = getattr(func, "__name__", "") or str(func)
    return name.split(".")[0]


def _kernels_off(why: str):
    def refuse(func, args, kwargs):
        name = _op_name(func)
        if _FUSED.match(name):
            return (f"torch's fused recurrent kernel '{name}' was called {why}. "
                    "torch.nn.RNN/LSTM/GRU and their cells call it; write the step from "
                    "tensor operations (matmul, +, tanh, sigmoid, ...) instead.")
        return None
    return FunctionBlocker(refuse)


def _tensors(args, kwargs) -> Iterator[torch.Tensor]:
    """The tensors among a torch function's arguments, one level into lists and tuples."""
    for v in (*args, *kwargs.values()):
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from (t for t in v if isinstance(t, torch.Tensor))


_AUTOGRAD_ADVICE = ("This exercise is to derive the gradients by hand: compute them from the states "
                    "with tensor operations, without autograd in any form (.backward(), "
                    "torch.autograd.grad, torch.func, forward-mode AD, requires_grad); the check "
                    "compares your result with autograd's.")


def _autograd_graph_off(why: str):
    """No tensor may require grad: without one, autograd has no graph to walk,
    whatever route is taken to it (the engine, grad_fn nodes called by hand)."""
    entries = (torch.Tensor.backward, torch.autograd.grad, torch.autograd.backward)

    def refuse(func, args, kwargs):
        if func in entries:
            return f"autograd ({getattr(func, '__qualname__', func)}) was called {why}. {_AUTOGRAD_ADVICE}"
        name = _op_name(func)
        if name in ("_make_dual", "_unpack_dual"):
            return f"forward-mode AD (a dual tensor, {name}) was used {why}. {_AUTOGRAD_ADVICE}"
        wants = kwargs.get("requires_grad") is True or (
            name == "requires_grad_" and (args[1:2] or [kwargs.get("requires_grad", True)])[0]) or (
            getattr(func, "__self__", None) is torch.Tensor.requires_grad and name == "__set__"
            and len(args) > 1 and bool(args[1]))
        if wants:
            return (f"autograd was switched on (a tensor made to require grad, by {name}) {why}. "
                    f"{_AUTOGRAD_ADVICE}")
        if any(t.requires_grad for t in _tensors(args, kwargs)):
            return (f"autograd was used (a tensor that requires grad, passed to {name}) {why}. "
                    f"{_AUTOGRAD_ADVICE}")
        return None
    return FunctionBlocker(refuse)


# ----------------------------------------------------------------------------
# Python functions, caught by their code object with a profile hook

_code_rules: list = []  # (decide(code) -> message or None, why), innermost last


_ALLOWED = object()     # what a rule's decide returns for a function the learner may call
_allowed_frames: list = []  # the frames of allowed functions running now, innermost last


def _profile(frame, event, arg):
    if event == "return":
        if _allowed_frames and frame is _allowed_frames[-1]:
            _allowed_frames.pop()
            _suspended.pop()
        return
    if event != "call" or _suspended:
        return
    code = frame.f_code
    for decide, why in reversed(_code_rules):
        message = decide(code, frame)
        if message is _ALLOWED:  # it, and whatever it calls, runs unblocked
            _allowed_frames.append(frame)
            _suspended.append(frame)
            return
        if message:
            _refuse(message.replace("{why}", why))


@contextlib.contextmanager
def _code_rule(decide, why: str) -> Iterator[None]:
    """Refuse every call whose code ``decide(code, frame)`` gives a message for.
    The hook is the thread's profile function; a profiler already set is put back."""
    previous = sys.getprofile()
    _code_rules.append((decide, why))
    sys.setprofile(_profile)
    try:
        yield
    finally:
        if sys.getprofile() is not _profile and not any(_active):
            # not a refusal (raising one unsets the hook): the code inside switched it off
            for refusals in _active:
                refusals.append(f"the hook that switches the package's answer code off was removed {why} "
                                "(sys.setprofile): the check cannot vouch for what ran after that.")
        _code_rules.pop()
        if _code_rules or previous is _profile:
            sys.setprofile(_profile if _code_rules else None)
        elif previous is not None and not callable(previous) and hasattr(previous, "enable"):
            sys.setprofile(None)
            previous.enable()  # a C profiler (cProfile) is put back by enabling it again
        else:
            sys.setprofile(previous)


def code_rule(name: str, decide: Callable) -> Target:
    """A target that refuses calls of Python functions: ``decide(code, frame)``
    returns the refusal (with ``{why}``) for a code object that must not run, or None."""
    return Target(name, lambda why: _code_rule(decide, why))


_PACKAGE = os.path.dirname(os.path.realpath(__file__))
# The package's infrastructure, reachable while a learner's code runs: it computes
# no answer (checking, devices, paths, the lesson map, plots); everything else in
# rnncourse is blocked, including modules added later.
INFRASTRUCTURE = frozenset({
    "guard.py", "__init__.py", "device.py", "paths.py", "labenv.py", "lessons.py", "plots.py",
    "gallery.py", "validation.py",
    "checks/__init__.py", "checks/calling.py", "checks/cases.py", "checks/compare.py",
    "checks/core.py", "checks/devices.py", "checks/gradients.py",
})
_where_cache: dict = {}


def _package_file(code) -> str | None:
    """The code's file relative to the package ("checks/gru.py"), or None outside it."""
    try:
        return _where_cache[code.co_filename]
    except KeyError:
        path = os.path.realpath(code.co_filename)
        rel = os.path.relpath(path, _PACKAGE).replace(os.sep, "/") if path.startswith(_PACKAGE + os.sep) else None
        _where_cache[code.co_filename] = rel
        return rel


def _answer_code(code, frame, allowed: Sequence[str] = ()) -> str | None:
    rel = _package_file(code)
    if rel is None or rel in INFRASTRUCTURE:
        return None
    if allowed:
        module = "rnncourse." + rel[:-3].replace("/", ".").removesuffix(".__init__")
        full = f"{module}.{code.co_qualname}"
        if any(full == n or full.startswith(n + ".") for n in allowed):
            return _ALLOWED
    owner = frame.f_locals.get("self") if code.co_argcount else None
    if owner is not None and type(owner).__module__.startswith("rnncourse."):
        what = f"rnncourse.{type(owner).__name__} was called {{why}} (its {code.co_qualname}, in rnncourse/{rel})"
    else:
        what = f"{code.co_qualname} (rnncourse/{rel}) was called {{why}}"
    return (f"{what}. The course's own code that computes answers (the "
            "reference models, the functional steps, the data helpers, the checks' reference and "
            "variant helpers) is switched off while your function runs: write the computation "
            "yourself, with tensor operations.")


def _autograd_code() -> dict:
    """code object -> what it is, for autograd's Python entry points."""
    import torch.autograd.forward_ad as forward_ad
    import torch.autograd.functional as functional
    from torch._functorch import apis, eager_transforms
    found = {torch.Tensor.backward.__code__: "Tensor.backward",
             torch.autograd.grad.__code__: "torch.autograd.grad",
             torch.autograd.backward.__code__: "torch.autograd.backward",
             apis.grad.__code__: "torch.func.grad", apis.grad_and_value.__code__: "torch.func.grad_and_value"}
    for module, label in ((functional, "torch.autograd.functional"), (forward_ad, "torch.autograd.forward_ad"),
                          (eager_transforms, "torch.func")):
        for attr, value in vars(module).items():
            value = getattr(value, "__func__", value)
            if callable(value) and getattr(value, "__module__", None) == module.__name__:
                for f in (value, getattr(value, "__enter__", None)):
                    code = getattr(getattr(f, "__wrapped__", f), "__code__", None)
                    if code is not None:
                        found[code] = f"{label}.{attr}"
    return found


@functools.lru_cache(maxsize=None)
def _autograd_codes() -> dict:
    return _autograd_code()


def _autograd_entry(code, frame) -> str | None:
    what = _autograd_codes().get(code)
    return f"autograd ({what}) was called {{why}}. {_AUTOGRAD_ADVICE}" if what else None


def answer_code_except(names: Sequence[str]) -> Target:
    """:data:`ANSWER_CODE` less the package's modules or functions ``names``
    (``"rnncourse.masking"``, ``"rnncourse.data.padding.collate"``): an exercise
    built on them may call them, and what they call runs unblocked. ``call_learner``
    builds it from the strings in its ``allow``."""
    names = tuple(names)
    return code_rule(f"the package's answer-computing code, except {', '.join(names)}",
                     lambda code, frame: _answer_code(code, frame, names))


@contextlib.contextmanager
def _autograd_off(why: str) -> Iterator[None]:
    _autograd_codes()  # import what it names before the hooks are in place
    with _autograd_graph_off(why), _code_rule(_autograd_entry, why):
        yield


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
                pairs.append((owner, attr, _refusal(message(attr), why, getattr(owner, attr))))
        return _replaced(pairs)
    return Target(name, enter)


def _refusal(text: str, why: str, original=None):
    def refuse(*args, **kwargs):
        if _suspended and original is not None:
            return original(*args, **kwargs)
        _refuse(text.replace("{why}", why))
    return refuse


def constructors(name: str, classes: Callable[[], Sequence[type]],
                 message: Callable[[type], str]) -> Target:
    """Building an instance of any of ``classes()`` (or a subclass that does not
    define its own ``__init__`` before reaching theirs) raises ``message(cls)``,
    where ``cls`` is the class being built. ``classes`` is called when the block
    starts, so that importing them costs nothing until a check needs them."""
    def enter(why: str):
        def refusal(original):
            def refuse(self, *args, **kwargs):
                if _suspended:
                    return original(self, *args, **kwargs)
                _suspended.append(message)  # the message may come from a check's module
                try:
                    text = message(type(self)).replace("{why}", why)
                finally:
                    _suspended.pop()
                _refuse(text)
            return refuse
        return _replaced([(cls, "__init__", refusal(cls.__init__)) for cls in classes()])
    return Target(name, enter)


REFERENCE_MODELS = Target("reference models", _references_off)
RECURRENT_KERNELS = Target("recurrent kernels", _kernels_off)
ANSWER_CODE = code_rule("the package's answer-computing code", _answer_code)
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

# What a from-scratch exercise runs without; checks.calling.call_learner blocks it on
# every call (a check may name exceptions with ``allow=``).
FROM_SCRATCH = (REFERENCE_MODELS, RECURRENT_KERNELS, ANSWER_CODE)


def recurrent_module_classes() -> list:
    """The base classes of torch.nn's and rnncourse's recurrent modules and cells."""
    from rnncourse import cells, peephole, recurrent
    return [torch.nn.modules.rnn.RNNBase, torch.nn.modules.rnn.RNNCellBase,
            recurrent.RNNBase, cells._CellBase, peephole.PeepholeLSTMCell]


@contextlib.contextmanager
def blocked(exercise: str, targets: Sequence[Target] = FROM_SCRATCH) -> Iterator[list]:
    """Block every target in ``targets`` while the learner's code for ``exercise``
    runs; undo them all on the way out, whatever happened inside.

    Yields the list of refusals made inside (messages, first first): a refusal the
    code inside caught and got past is still in it, and
    :func:`rnncourse.checks.calling.call_learner` fails the call for it."""
    why = f"while checking your '{exercise}', a from-scratch exercise"
    # the code rule last: entering the others may import (the module classes, torch.func)
    ordered = sorted(dict.fromkeys(targets), key=lambda t: t.name.startswith(ANSWER_CODE.name))
    refusals: list = []
    with contextlib.ExitStack() as stack:
        _active.append(refusals)
        stack.callback(_drop, refusals)
        for target in ordered:
            stack.enter_context(target.enter(why))
        yield refusals


def _drop(refusals: list) -> None:
    for i in range(len(_active) - 1, -1, -1):
        if _active[i] is refusals:
            del _active[i]
            return


@contextlib.contextmanager
def fused_kernels_blocked(why: str = "inside a block that forbids it") -> Iterator[None]:
    """Inside the block, any fused recurrent kernel raises :class:`BlockedError`."""
    with RECURRENT_KERNELS.enter(why):
        yield
