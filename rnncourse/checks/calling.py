"""Calling the learner's code the way a check must, and how a failure reads."""
from __future__ import annotations

import contextlib
import io
import warnings
from typing import Callable, Sequence

import torch

from rnncourse.checks.cases import Case, Placed
from rnncourse.guard import ANSWER_CODE, FROM_SCRATCH, BlockedError, Target, answer_code_except, blocked


class CheckFailed(AssertionError):
    """A graded check found a problem. Its message is written for the learner.

    In IPython (Jupyter, nbgrader) it shows as ``CheckFailed: <message>`` only:
    a full traceback would quote the test cell's source (and so, in nbgrader's
    feedback, hidden tests) and bury the explanation. IPython asks an exception
    for ``_render_traceback_`` before formatting one, and the cell still ends in
    an error output, which is what nbgrader scores. (``set_custom_exc`` is not
    used: on IPython 9 its handler's output never reaches the notebook, so the
    failing cell would look clean.)
    """

    def _render_traceback_(self) -> list:
        return [f"\x1b[0;31m{type(self).__name__}\x1b[0m: {self}"]


def learner_blocks(blocks: Sequence[Target] = (), allow: Sequence = ()) -> tuple:
    """What a learner's call runs without: always :data:`~rnncourse.guard.FROM_SCRATCH`
    (the package's answer-computing code, the reference models, torch's recurrent
    kernels), plus ``blocks``, less what ``allow`` names: targets (an exercise whose
    answer is to use torch.nn.LSTM allows ``RECURRENT_KERNELS``) and package modules
    or functions by name (an exercise built on ``"rnncourse.masking"`` allows it)."""
    names = [a for a in allow if isinstance(a, str)]
    targets = [t for t in dict.fromkeys((*FROM_SCRATCH, *blocks)) if t not in allow]
    if names:
        targets = [answer_code_except(names) if t is ANSWER_CODE else t for t in targets]
    return tuple(targets)


def call_learner(fn: Callable, case: Case, exercise: str, hint_on_error: str | Callable = "",
                 blocks: Sequence[Target] = FROM_SCRATCH, allow: Sequence = ()):
    """Call ``fn(*case.args)`` the way a check must.

    * Blocked while it runs: always the package's answer-computing code, the
      reference models and torch's recurrent kernels; also what ``blocks`` adds
      for the exercise (autograd, torch's clipping, module constructors); not
      what ``allow`` lifts (see :func:`learner_blocks`). A refusal the learner's
      code catches still fails the call.
    * The learner gets copies of tensor arguments, and we check the originals
      were not changed. Parameters are handed over as they are: scaling their
      gradients in place is what a clipping exercise asks for.
    * Warnings are recorded and anything written to stderr is swallowed: in
      nbgrader a single line on stderr costs the whole test cell its points.
    * An exception becomes a :class:`CheckFailed` that says which case it was;
      ``hint_on_error`` (a text, or a function of the exception giving one, ""
      for none) is added to it.
    * A case declared ``meta`` is run a second time on the meta device and a
      ``gradient`` case a second time with gradients (see :mod:`.devices`,
      :mod:`.gradients`); what they find fails here, before the values are compared.
    """
    if not callable(fn):
        raise CheckFailed(f"{exercise} should be a function, but it is a "
                          f"{type(fn).__name__}. Run the cell that defines it first.")
    blocks = learner_blocks(blocks, allow)
    copies = [v.clone() if isinstance(v, torch.Tensor) else v.for_learner() if isinstance(v, Placed)
              else v for v in case.args.values()]
    try:
        with blocked(exercise, blocks) as refusals, warnings.catch_warnings(record=True), \
                contextlib.redirect_stderr(io.StringIO()):
            warnings.simplefilter("always")
            out = fn(*copies)
    except BlockedError as e:
        raise CheckFailed(f"{exercise}, {case.label}: {e}") from None
    except NotImplementedError:
        raise CheckFailed(f"{exercise}, {case.label}: your function raised NotImplementedError. "
                          "Replace the stub (`raise NotImplementedError(...)`) with your code.") from None
    except Exception as e:  # the learner's bug, reported as this exercise's failure
        msg = f"{exercise}, {case.label}: your function raised {type(e).__name__}: {e}"
        hint = hint_on_error(e) if callable(hint_on_error) else hint_on_error
        if hint:
            msg += f"\nHint: {hint}"
        raise CheckFailed(msg) from None
    if refusals:  # refused, caught by the learner's code, and got past
        raise CheckFailed(f"{exercise}, {case.label}: {refusals[0]} (Catching the refusal does not "
                          "get past it.)")
    for (name, original), copy in zip(case.args.items(), copies):
        if not isinstance(original, torch.Tensor):
            continue
        if copy.shape != original.shape or not torch.equal(copy, original):
            raise CheckFailed(f"{exercise}, {case.label}: your function changed its input "
                              f"'{name}' in place. Compute new tensors instead of writing "
                              "into the arguments (avoid +=, .add_(), x[...] = ...).")
    if case.meta:
        from rnncourse.checks.devices import device_label, device_run
        problem = device_run(fn, case, exercise, blocks)
        if problem:
            raise CheckFailed(f"{exercise}, {device_label(case)}: {problem}")
    if case.gradient is not None:
        from rnncourse.checks.gradients import gradient_run
        problem = gradient_run(fn, case, exercise, blocks, case.gradient)
        if problem:
            raise CheckFailed(problem)
    return out


_SHAPE_WORDS = ("shape", "size of tensor", "must match the size", "mat1 and mat2", "dimension",
                "broadcast", "Expected size", "expanded size")


def on_shape_error(hint: str) -> Callable[[Exception], str]:
    """``hint`` for ``call_learner``'s ``hint_on_error`` only when the learner's error
    is about shapes (a layout hint is evidence-free for, say, a NameError)."""
    return lambda e: hint if any(w in str(e) for w in _SHAPE_WORDS) else ""


def _names(code) -> set:
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _names(const)
    return names


def helper_problem(fn: Callable, helper: str, check: Callable) -> str | None:
    """What ``check`` says of the learner's ``helper`` (found in ``fn``'s namespace)
    when ``fn`` calls it and it fails its own visible check; else None."""
    code = getattr(fn, "__code__", None)
    found = getattr(fn, "__globals__", {}).get(helper)
    if code is None or not callable(found) or helper not in _names(code):
        return None
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            check(found)
    except CheckFailed as e:
        return str(e)
    return None


@contextlib.contextmanager
def helper_first(fn: Callable, exercise: str, helper: str, check: Callable):
    """A failure of ``exercise`` is told as the failure of the learner's own ``helper``
    first, when ``fn`` calls it and it fails its check (rnn_forward calling rnn_step)."""
    try:
        yield
    except CheckFailed as failure:
        problem = helper_problem(fn, helper, check)
        if problem is None:
            raise
        raise CheckFailed(f"{exercise}: your {helper} fails its own check, and {exercise} calls it, "
                          f"so fix {helper} first. Its check says: {problem}\n(What {exercise}'s check "
                          f"saw: {failure})") from None


def passed(exercise: str, cases: Sequence[Case], hidden: bool) -> None:
    """One line on stdout saying what was checked (stdout is free in nbgrader)."""
    kinds = sorted({f"{str(c.dtype).replace('torch.', '')}/{c.device.type}" for c in cases})
    which = "hidden" if hidden else "visible"
    print(f"{exercise}: all {len(cases)} {which} cases pass ({', '.join(kinds)}).")
