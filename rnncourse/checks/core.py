"""The machinery every check shares: seeded cases, calling the learner's code,
validating what came back, and comparing it with a reference.

A check in ``rnncourse.checks.<lesson>`` is written as::

    for case in cases:                                       # seeded, see build_cases
        out = call_learner(fn, case, "rnn_step")             # blocked, warnings captured
        validate(out, case, "rnn_step", "h_t", ("B", "H"))   # type, shape, dtype, device, NaN
        compare(out, reference, case, "rnn_step", "h_t", variants={...})

and on any failure raises :class:`CheckFailed`, whose message names the case,
says what was expected and what came back, and, where a known wrong variant of
the computation reproduces the learner's output, names the likely mistake. The
expected values themselves are never printed: the point is to teach, not to
leak the answer.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import torch

from rnncourse.guard import BlockedError, blocked


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


# (atol, rtol) per dtype: loose enough that any correct order of operations
# passes (looped vs vectorised, CPU vs GPU), tight enough that every wrong
# variant we know of fails by orders of magnitude.
TOLERANCE = {
    torch.float64: (1e-10, 1e-8),
    torch.float32: (1e-5, 1e-4),
    torch.bfloat16: (2e-2, 2e-2),
    torch.float16: (2e-3, 2e-3),
}
_PRECISION = {torch.float16: 0, torch.bfloat16: 0, torch.float32: 1, torch.float64: 2}


# ----------------------------------------------------------------------------
# cases

@dataclass
class Case:
    """One set of seeded inputs for an exercise.

    ``args`` holds the positional arguments in the order the learner's function
    takes them; ``sizes`` the named sizes (B, T, I, H, ...) used in messages.
    """
    index: int
    total: int
    seed: int
    dtype: torch.dtype
    device: torch.device
    sizes: dict
    args: dict = field(default_factory=dict)

    @property
    def label(self) -> str:
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        dtype = str(self.dtype).replace("torch.", "")
        return (f"case {self.index + 1} of {self.total} (seed {self.seed}, {dtype} "
                f"on {self.device.type}; {sizes})")


def case_plan(hidden: bool, visible_seeds: Sequence[int] = (0,),
              hidden_seeds: Sequence[int] = (10, 11, 12)) -> list:
    """The (seed, dtype, device) triples a check runs.

    Visible tests: float32 cases plus one float64 case, so a learner whose code
    silently drops to float32 finds out before grading. Hidden tests: float64,
    several seeds, and one case on the GPU when there is one.
    """
    cpu = torch.device("cpu")
    if not hidden:
        plan = [(s, torch.float32, cpu) for s in visible_seeds]
        plan.append((visible_seeds[-1] + 1, torch.float64, cpu))
        return plan
    plan = [(s, torch.float64, cpu) for s in hidden_seeds]
    if torch.cuda.is_available():
        plan.append((hidden_seeds[-1] + 1, torch.float64, torch.device("cuda")))
    return plan


def distinct_sizes(gen: torch.Generator, names: str, low: int = 2, high: int = 9) -> dict:
    """Pairwise-different sizes, one per letter of ``names`` (e.g. "BTIH"), so
    that a transposed weight or a swapped axis shows up as a wrong shape or a
    wrong value instead of passing by accident."""
    if high - low < len(names):
        raise ValueError("range too small for pairwise-different sizes")
    pool = torch.randperm(high - low, generator=gen) + low
    return {n: int(pool[i]) for i, n in enumerate(names)}


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """Standard-normal values drawn in float64 on the CPU, so float32 and float64
    cases with the same seed hold the same numbers (up to rounding)."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale


def make_case(index: int, total: int, seed: int, dtype: torch.dtype, device: torch.device,
              sizes: dict, args: Mapping[str, torch.Tensor]) -> Case:
    """Place the float64 CPU tensors of ``args`` on the case's device, floating
    ones in its dtype; other arguments (ints) pass through."""
    placed = {}
    for name, t in args.items():
        if isinstance(t, torch.Tensor):
            t = t.to(dtype) if t.is_floating_point() else t
            t = t.to(device)
        placed[name] = t
    return Case(index, total, seed, dtype, device, dict(sizes), placed)


def build_cases(hidden: bool, names: str, build: Callable[[torch.Generator, dict], dict],
                plan: Sequence[tuple] | None = None) -> list:
    """The cases of one exercise: one per (seed, dtype, device) of ``plan``
    (default: :func:`case_plan` for ``hidden``).

    Each case gets its own ``torch.Generator`` seeded with the plan's seed, from
    which :func:`distinct_sizes` draws one size per letter of ``names`` and then
    ``build(gen, sizes)`` draws the arguments (float64 CPU tensors, in the order
    the learner's function takes them); :func:`make_case` places them.
    """
    plan = plan or case_plan(hidden)
    cases = []
    for i, (seed, dtype, device) in enumerate(plan):
        gen = torch.Generator().manual_seed(seed)
        sizes = distinct_sizes(gen, names)
        cases.append(make_case(i, len(plan), seed, dtype, device, sizes, build(gen, sizes)))
    return cases


# ----------------------------------------------------------------------------
# calling the learner's code

def call_learner(fn: Callable, case: Case, exercise: str, hint_on_error: str = "",
                 block: bool = True):
    """Call ``fn(*case.args)`` the way a check must.

    * The reference models and torch's recurrent kernels are blocked (``block``).
    * The learner gets copies, and we check the originals were not changed.
    * Warnings are recorded and anything written to stderr is swallowed: in
      nbgrader a single line on stderr costs the whole test cell its points.
    * An exception becomes a :class:`CheckFailed` that says which case it was.
    """
    if not callable(fn):
        raise CheckFailed(f"{exercise} should be a function, but it is a "
                          f"{type(fn).__name__}. Run the cell that defines it first.")
    copies = [t.clone() if isinstance(t, torch.Tensor) else t for t in case.args.values()]
    guard = blocked(exercise) if block else contextlib.nullcontext()
    try:
        with guard, warnings.catch_warnings(record=True), \
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
        if hint_on_error:
            msg += f"\nHint: {hint_on_error}"
        raise CheckFailed(msg) from None
    for (name, original), copy in zip(case.args.items(), copies):
        if not isinstance(original, torch.Tensor):
            continue
        if copy.shape != original.shape or not torch.equal(copy, original):
            raise CheckFailed(f"{exercise}, {case.label}: your function changed its input "
                              f"'{name}' in place. Compute new tensors instead of writing "
                              "into the arguments (avoid +=, .add_(), x[...] = ...).")
    return out


# ----------------------------------------------------------------------------
# validating and comparing

def shape_text(names: Sequence[str], sizes: Mapping[str, int]) -> str:
    """("B", "H") with B=3, H=5 -> "(B, H) = (3, 5)"; a name may be "T+1"."""
    values = tuple(_size(n, sizes) for n in names)
    return f"({', '.join(names)}) = {_tuple(values)}"


def _size(name: str, sizes: Mapping[str, int]) -> int:
    if "+" in name:
        a, b = name.split("+")
        return sizes[a] + int(b)
    if "-" in name:
        a, b = name.split("-")
        return sizes[a] - int(b)
    return sizes[name]


def _tuple(t: Sequence[int]) -> str:
    return f"({t[0]},)" if len(t) == 1 else "(" + ", ".join(str(int(v)) for v in t) + ")"


def validate(out, case: Case, exercise: str, what: str, shape: Sequence[str],
             shape_hints: Mapping[tuple, str] | None = None,
             input_dtype: torch.dtype | None = None) -> torch.Tensor:
    """Check the type, shape, dtype, device and finiteness of one returned tensor.

    ``shape`` names the expected axes (e.g. ``("B", "T", "H")``); ``shape_hints``
    maps a wrong shape (as a tuple of ints) to what it suggests. ``input_dtype``
    (default: the case's dtype) is the least precision the output may have:
    float64 in, float32 out loses precision and is reported.
    """
    where = f"{exercise}, {case.label}"
    if not isinstance(out, torch.Tensor):
        extra = " Convert with torch.as_tensor or keep working in torch." if hasattr(out, "shape") else ""
        raise CheckFailed(f"{where}: {what} should be a torch.Tensor, got {type(out).__name__}.{extra}")
    expected = tuple(_size(n, case.sizes) for n in shape)
    got = tuple(out.shape)
    if got != expected:
        msg = f"{where}: expected {what} of shape {shape_text(shape, case.sizes)}, got {_tuple(got) if got else '()'}"
        hint = (shape_hints or {}).get(got)
        if hint is None and len(got) == len(expected) and sorted(got) == sorted(expected):
            hint = "the same sizes in another order: check for a transpose or swapped axes"
        raise CheckFailed(msg + (f" ({hint})." if hint else "."))
    if not out.is_floating_point():
        raise CheckFailed(f"{where}: {what} should be a floating-point tensor, got {out.dtype} "
                          "(convert with .float() or .to(dtype)).")
    want = input_dtype or case.dtype
    if _PRECISION.get(out.dtype, 0) < _PRECISION.get(want, 0):
        raise CheckFailed(f"{where}: {what} has dtype {out.dtype} but the inputs are {want}: "
                          "precision was lost on the way. Create new tensors with the inputs' "
                          "dtype, e.g. torch.zeros(..., dtype=x.dtype, device=x.device).")
    if out.device != case.device and not (out.device.type == case.device.type == "cuda"):
        raise CheckFailed(f"{where}: {what} is on device '{out.device}' but the inputs are on "
                          f"'{case.device}'. Keep the output on the inputs' device: create new "
                          "tensors with device=x.device and don't call .cpu() / .to(...).")
    bad = ~torch.isfinite(out.detach())
    if bad.any():
        kind = "NaN" if torch.isnan(out.detach()).any() else "inf"
        raise CheckFailed(f"{where}: {what} contains {kind} ({int(bad.sum())} of {out.numel()} "
                          "entries are not finite).")
    return out


def tolerance(case: Case, out: torch.Tensor) -> tuple:
    """(atol, rtol) for the less precise of the inputs' and the output's dtype."""
    lowest = min((case.dtype, out.dtype), key=lambda d: _PRECISION.get(d, 0))
    return TOLERANCE.get(lowest, TOLERANCE[torch.float32])


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= atol + rtol * b.abs()).all())


def on_cpu64(case: Case) -> dict:
    """The case's arguments as float64 CPU tensors, for computing references."""
    return {k: (v.detach().to("cpu", torch.float64) if isinstance(v, torch.Tensor) and v.is_floating_point()
                else v.cpu() if isinstance(v, torch.Tensor) else v)
            for k, v in case.args.items()}


def compare(out: torch.Tensor, expected: torch.Tensor, case: Case, exercise: str, what: str,
            variants: Mapping[str, torch.Tensor] | None = None, hint: str = "") -> None:
    """Compare the whole of ``out`` with ``expected`` (float64, CPU).

    ``variants`` maps a phrase completing "your output matches what you get if ..."
    to the output of that wrong computation; the first one ``out`` matches is
    named in the message. Without a match the message gives the largest error
    and where it is, never the expected values.
    """
    got = out.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    atol, rtol = tolerance(case, out)
    if _close(got, expected, atol, rtol):
        return
    where = f"{exercise}, {case.label}"
    for phrase, wrong in (variants or {}).items():
        if wrong is not None and _close(got, wrong.detach().to("cpu", torch.float64), atol, rtol):
            raise CheckFailed(f"{where}: {what} is wrong. It matches what you get if {phrase}.")
    err = (got - expected).abs()
    flat = int(err.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), err.shape)) if err.dim() else ()
    outside = int((err > atol + rtol * expected.abs()).sum())
    msg = (f"{where}: {what} is wrong: {outside} of {err.numel()} entries differ from the "
           f"reference; the largest error is {float(err.max()):.3g} at index {index} "
           f"(tolerance {atol:g} + {rtol:g}·|expected|).")
    raise CheckFailed(msg + (f"\nHint: {hint}" if hint else ""))


def passed(exercise: str, cases: Sequence[Case], hidden: bool) -> None:
    """One line on stdout saying what was checked (stdout is free in nbgrader)."""
    kinds = sorted({f"{str(c.dtype).replace('torch.', '')}/{c.device.type}" for c in cases})
    which = "hidden" if hidden else "visible"
    print(f"{exercise}: all {len(cases)} {which} cases pass ({', '.join(kinds)}).")
