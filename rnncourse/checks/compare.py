"""Validating what the learner returned, one validator per kind of output, and
comparing it with the reference at the tolerance of one table.

Kinds: a float tensor (:func:`validate`: shape, floating dtype no less precise
than the inputs, device, finite), an integer tensor (:func:`validate_int`:
shape, exact dtype, device), a boolean mask (:func:`validate_mask`), a tuple or
list of a given length (:func:`validate_items`), and a Python scalar
(:func:`validate_scalar`: an int or a float, or a one-element tensor).
Comparisons: :func:`compare` (float tensors, tolerance), :func:`compare_exact`
(integer tensors, masks, token lists), :func:`compare_scalar`. Each names the
known wrong variants the output matches (all of them when several do, and none
that is indistinguishable from the right answer in that case), and never prints
the expected values. A None where a result should be asks whether a `return`
is missing.
"""
from __future__ import annotations

import numbers
from typing import Mapping, Sequence

import torch

from rnncourse.checks.calling import CheckFailed
from rnncourse.checks.cases import Case

# (atol, rtol) per kind of result and the less precise dtype involved: loose
# enough that any correct order of operations passes (looped vs vectorised, CPU
# vs GPU), tight enough that every wrong variant we know of fails by orders of
# magnitude.
#   tensor:  a tensor computed from the inputs
#   scaled:  gradients scaled by max_norm / total, where torch adds 1e-6 to total
#            and a correct learner need not (hence rtol 1e-5 at every precision)
#   scalar:  one number, e.g. a norm or a loss
TOLERANCE = {
    "tensor": {torch.float64: (1e-10, 1e-8), torch.float32: (1e-5, 1e-4),
               torch.bfloat16: (2e-2, 2e-2), torch.float16: (2e-3, 2e-3)},
    "scaled": {torch.float64: (1e-9, 1e-5), torch.float32: (1e-6, 1e-5)},
    "scalar": {torch.float64: (1e-10, 1e-8), torch.float32: (1e-5, 1e-5)},
}
_PRECISION = {torch.float16: 0, torch.bfloat16: 0, torch.float32: 1, torch.float64: 2}


def tolerance(case: Case, out_dtype: torch.dtype | None = None, kind: str = "tensor") -> tuple:
    """(atol, rtol) of ``kind`` for the less precise of the case's and the output's
    dtype (integer inputs count as float32's precision)."""
    table = TOLERANCE[kind]
    dtypes = [d for d in (case.dtype, out_dtype) if d in _PRECISION] or [torch.float32]
    lowest = min(dtypes, key=_PRECISION.get)
    return table.get(lowest, table[torch.float32])


# ----------------------------------------------------------------------------
# shapes

def _size(name, sizes: Mapping[str, int]) -> int:
    """A size by name ("T", "T+1", "T-1") or an int as it is."""
    if isinstance(name, int):
        return name
    for sign in ("+", "-"):
        if sign in name:
            a, b = name.split(sign)
            return sizes[a] + int(b) * (1 if sign == "+" else -1)
    return sizes[name]


def _tuple(t: Sequence[int]) -> str:
    if not len(t):
        return "()"
    return f"({t[0]},)" if len(t) == 1 else "(" + ", ".join(str(int(v)) for v in t) + ")"


def shape_text(names: Sequence, sizes: Mapping[str, int]) -> str:
    """("B", "H") with B=3, H=5 -> "(B, H) = (3, 5)"; all-int shapes are shown as they are."""
    values = tuple(_size(n, sizes) for n in names)
    if all(isinstance(n, int) for n in names):
        return _tuple(values)
    return f"({', '.join(str(n) for n in names)}) = {_tuple(values)}"


def _where(case: Case, exercise: str) -> str:
    return f"{exercise}, {case.label}"


def _none(out, where: str, what: str) -> None:
    if out is None:
        raise CheckFailed(f"{where}: {what} is None. Did your function forget to `return` it?")


def _tensor_and_shape(out, case, exercise, what, shape, shape_hints, transposed_hint):
    where = _where(case, exercise)
    _none(out, where, what)
    if not isinstance(out, torch.Tensor):
        extra = " Convert with torch.as_tensor or keep working in torch." if hasattr(out, "shape") else ""
        raise CheckFailed(f"{where}: {what} should be a torch.Tensor, got {type(out).__name__}.{extra}")
    expected = tuple(_size(n, case.sizes) for n in shape)
    got = tuple(out.shape)
    if got != expected:
        msg = f"{where}: expected {what} of shape {shape_text(shape, case.sizes)}, got {_tuple(got)}"
        hint = (shape_hints or {}).get(got)
        if hint is None and len(got) == len(expected) and sorted(got) == sorted(expected):
            hint = transposed_hint
        raise CheckFailed(msg + (f" ({hint})." if hint else "."))


def _same_device(out, case, exercise, what):
    if out.device != case.device and not (out.device.type == case.device.type == "cuda"):
        raise CheckFailed(f"{_where(case, exercise)}: {what} is on device '{out.device}' but the "
                          f"inputs are on '{case.device}'. Keep the output on the inputs' device: "
                          "create new tensors with device=x.device and don't call .cpu() / .to(...).")


_SWAPPED = "the same sizes in another order: check for a transpose or swapped axes"


# ----------------------------------------------------------------------------
# validators, one per kind

def validate(out, case: Case, exercise: str, what: str, shape: Sequence,
             shape_hints: Mapping[tuple, str] | None = None,
             input_dtype: torch.dtype | None = None, same_dtype: bool = False) -> torch.Tensor:
    """A float tensor: type, shape, floating dtype, precision, device, finiteness.

    ``shape`` names the expected axes (e.g. ``("B", "T", "H")``); ``shape_hints``
    maps a wrong shape (as a tuple of ints) to what it suggests. ``input_dtype``
    (default: the case's dtype) is the least precision the output may have:
    float64 in, float32 out loses precision and is reported. With ``same_dtype``
    (the exercise promises "the inputs' dtype") the output must have exactly it:
    float32 in, float64 out is reported too.
    """
    where = _where(case, exercise)
    _tensor_and_shape(out, case, exercise, what, shape, shape_hints, _SWAPPED)
    if not out.is_floating_point():
        raise CheckFailed(f"{where}: {what} should be a floating-point tensor, got {out.dtype} "
                          "(convert with .float() or .to(dtype)).")
    want = input_dtype or case.dtype
    if _PRECISION.get(out.dtype, 0) < _PRECISION.get(want, 0):
        raise CheckFailed(f"{where}: {what} has dtype {out.dtype} but the inputs are {want}: "
                          "precision was lost on the way. Create new tensors with the inputs' "
                          "dtype, e.g. torch.zeros(..., dtype=x.dtype, device=x.device).")
    if same_dtype and out.dtype != want:
        raise CheckFailed(f"{where}: {what} has dtype {out.dtype} but the inputs are {want}; the "
                          "exercise asks for the inputs' dtype. Don't convert (.double(), .float()), "
                          "and create new tensors with dtype=x.dtype.")
    _same_device(out, case, exercise, what)
    bad = ~torch.isfinite(out.detach())
    if bad.any():
        kind = "NaN" if torch.isnan(out.detach()).any() else "inf"
        raise CheckFailed(f"{where}: {what} contains {kind} ({int(bad.sum())} of {out.numel()} "
                          "entries are not finite).")
    return out


def validate_int(out, case: Case, exercise: str, what: str, shape: Sequence,
                 shape_hints: Mapping[tuple, str] | None = None, dtype: torch.dtype | None = None,
                 noun: str = "inputs", transposed_hint: str = _SWAPPED) -> torch.Tensor:
    """An integer tensor (token ids, lengths, indices): type, shape, exactly
    ``dtype`` (default the case's), device."""
    _tensor_and_shape(out, case, exercise, what, shape, shape_hints, transposed_hint)
    want = dtype or case.dtype
    if out.dtype != want:
        raise CheckFailed(f"{_where(case, exercise)}: {what} has dtype {out.dtype}; keep the {noun}' "
                          f"dtype ({want}): ids, lengths and indices stay integers (they index "
                          "embeddings and tensors).")
    _same_device(out, case, exercise, what)
    return out


def validate_mask(out, case: Case, exercise: str, what: str, shape: Sequence,
                  shape_hints: Mapping[tuple, str] | None = None) -> torch.Tensor:
    """A boolean mask (padding, finished hypotheses): type, shape, torch.bool, device."""
    _tensor_and_shape(out, case, exercise, what, shape, shape_hints, _SWAPPED)
    if out.dtype != torch.bool:
        raise CheckFailed(f"{_where(case, exercise)}: {what} should be a boolean mask (torch.bool), "
                          f"got {out.dtype}. Comparisons such as lengths[:, None] > t give one.")
    _same_device(out, case, exercise, what)
    return out


def validate_items(result, case: Case, exercise: str, items: Sequence[str], what: str = "",
                   by_length: Mapping[int, str] | None = None, types=(tuple, list),
                   fix: str = "") -> list:
    """A tuple or list of ``len(items)`` things, named ``items`` in messages
    (``what``, default "a pair"/"a tuple of n", says what it is). ``by_length``
    maps a wrong length to a message of its own; ``fix`` is the return statement
    to suggest (default ``return <items>``)."""
    n = len(items)
    names = ", ".join(items)
    what = what or ("a pair" if n == 2 else f"a tuple of {n}")
    where = _where(case, exercise)
    if result is None:
        raise CheckFailed(f"{where}: your function returned None. Did it forget to "
                          f"`{fix or 'return ' + names}`?")
    if isinstance(result, types) and len(result) in (by_length or {}) and len(result) != n:
        raise CheckFailed(f"{where}: expected {what} ({names}), got {by_length[len(result)]}")
    if not isinstance(result, types) or len(result) != n:
        got = f"a {type(result).__name__}" + (f" of length {len(result)}" if isinstance(result, types) else "")
        raise CheckFailed(f"{where}: expected {what} ({names}), got {got}. End with `{fix or 'return ' + names}`.")
    return list(result)


def validate_scalar(out, case: Case, exercise: str, what: str, integer: bool = False,
                    missing: str = "", exact_int: bool = False) -> float | int:
    """One number: a Python int/float or a one-element tensor; with ``integer`` a
    whole number (returned as an int). With ``exact_int`` (the exercise asks for
    an int) it must be an int: a Python or NumPy integer, or an integer tensor of
    one element, not 640.0. ``missing`` explains a None."""
    where = _where(case, exercise)
    if out is None:
        raise CheckFailed(f"{where}: your function returned None. {missing or 'Did it forget to `return`?'}")
    if exact_int and not isinstance(out, bool) and not isinstance(out, numbers.Integral) and not (
            isinstance(out, torch.Tensor) and not out.is_floating_point() and out.dtype != torch.bool):
        raise CheckFailed(f"{where}: {what} should be an int, got {type(out).__name__} "
                          f"{out!r:.40}. Count with int arithmetic (// not /), or return int(...).")
    if isinstance(out, torch.Tensor):
        if out.numel() != 1:
            raise CheckFailed(f"{where}: expected one number (a float or a 0-dim tensor), got a tensor "
                              f"of shape {tuple(out.shape)}.")
        out = out.detach().cpu().reshape(()).item()
    if isinstance(out, bool) or not (isinstance(out, numbers.Real) or hasattr(out, "__float__")):
        kind = "an int" if integer else "a float or a 0-dim tensor"
        raise CheckFailed(f"{where}: {what} should be a number ({kind}), got {type(out).__name__}.")
    if not integer:
        return float(out)
    if isinstance(out, numbers.Integral) or float(out).is_integer():
        return int(out)
    raise CheckFailed(f"{where}: returned {out}, which is not a whole number (use // or int arithmetic).")


# ----------------------------------------------------------------------------
# comparing

def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    return a.shape == b.shape and bool(((a - b).abs() <= atol + rtol * b.abs()).all())


def _explains(got, wrong, expected, same) -> bool:
    """A variant explains the output only if it reproduces it and differs from the
    right answer: one that equals the right answer here (a tolerance's width away,
    say) would name a mistake for what may be a precision slip."""
    return not same(wrong, expected) and same(got, wrong)


def _either(phrases: list) -> str:
    """One phrase, or all of those that reproduce the output equally well: naming
    only one of them would claim evidence the case does not have."""
    if len(phrases) == 1:
        return phrases[0]
    shown = phrases[:3]
    more = f" (or {len(phrases) - 3} more mistakes that give the same numbers here)" if len(phrases) > 3 else ""
    return ("one of these, which this case cannot tell apart: " + "; or if ".join(shown) + more)


def close(got, want, atol: float, rtol: float) -> bool:
    """Tensors (or lists of tensors / None, matched item by item) within tolerance."""
    if isinstance(want, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(want) and all(
            (g is None) == (w is None) and (w is None or close(g, w, atol, rtol)) for g, w in zip(got, want))
    return _close(got.detach().to("cpu", torch.float64), want.detach().to("cpu", torch.float64), atol, rtol)


def compare(out: torch.Tensor, expected: torch.Tensor, case: Case, exercise: str, what: str,
            variants: Mapping[str, torch.Tensor] | None = None, hint: str = "") -> None:
    """Compare the whole of float tensor ``out`` with ``expected`` (float64, CPU).

    ``variants`` maps a phrase completing "your output matches what you get if ..."
    to the output of that wrong computation; the first one ``out`` matches is
    named in the message. Without a match the message gives the largest error
    and where it is, never the expected values.
    """
    got = out.detach().to("cpu", torch.float64)
    expected = expected.detach().to("cpu", torch.float64)
    atol, rtol = tolerance(case, out.dtype)
    if _close(got, expected, atol, rtol):
        return
    where = _where(case, exercise)
    matches = [p for p, w in (variants or {}).items() if w is not None and _explains(
        got, w.detach().to("cpu", torch.float64), expected, lambda a, b: _close(a, b, atol, rtol))]
    if matches:
        raise CheckFailed(f"{where}: {what} is wrong. It matches what you get if {_either(matches)}.")
    err = (got - expected).abs()
    flat = int(err.argmax())
    index = tuple(int(i) for i in torch.unravel_index(torch.tensor(flat), err.shape)) if err.dim() else ()
    outside = int((err > atol + rtol * expected.abs()).sum())
    msg = (f"{where}: {what} is wrong: {outside} of {err.numel()} entries differ from the "
           f"reference; the largest error is {float(err.max()):.3g} at index {index} "
           f"(tolerance {atol:g} + {rtol:g}·|expected|).")
    raise CheckFailed(msg + (f"\nHint: {hint}" if hint else ""))


def compare_exact(out, expected, case: Case, exercise: str, what: str,
                  variants: Mapping[str, object] | None = None, same=None, otherwise: str = "",
                  explain=None) -> None:
    """Integer tensors, masks or structures of them must equal ``expected`` exactly
    (``same(a, b)`` decides, default torch.equal on CPU). On a mismatch, the
    first matching variant is named; else ``explain()``, when given, may raise a
    diagnosis of its own; else the message says how many entries differ (for
    tensors of the same shape) and adds ``otherwise``."""
    same = same or (lambda a, b: isinstance(a, torch.Tensor) and a.shape == b.shape
                    and torch.equal(a.cpu(), b.cpu()))
    if same(out, expected):
        return
    where = _where(case, exercise)
    matches = [p for p, w in (variants or {}).items() if w is not None and _explains(out, w, expected, same)]
    if matches:
        raise CheckFailed(f"{where}: {what} are wrong. They match what you get if {_either(matches)}.")
    if explain is not None:
        explain()
    if isinstance(out, torch.Tensor) and isinstance(expected, torch.Tensor) and out.shape == expected.shape:
        bad = int((out.cpu() != expected.cpu()).sum())
        raise CheckFailed(f"{where}: {what} are wrong: {bad} of {expected.numel()} entries are not "
                          f"where they should be. {otherwise}".rstrip())
    raise CheckFailed(f"{where}: {what} are wrong. {otherwise}".rstrip())


def compare_scalar(value: float, expected: float, case: Case, exercise: str, what: str,
                   variants: Mapping[str, float] | None = None, advice: str = "") -> None:
    """One number against ``expected`` at the "scalar" tolerance; a variant matches
    within the same atol and rtol 1e-5 (it may or may not add torch's epsilons)."""
    atol, rtol = tolerance(case, kind="scalar")
    if abs(value - expected) <= atol + rtol * abs(expected):
        return
    where = _where(case, exercise)

    def same(a, b):
        return abs(a - b) <= atol + 1e-5 * abs(b)
    matches = [p for p, w in (variants or {}).items() if _explains(value, w, expected, same)]
    if matches:
        raise CheckFailed(f"{where}: {what} is wrong. It matches what you get if {_either(matches)}.")
    raise CheckFailed(f"{where}: {what} is off by {abs(value - expected):.3g} "
                      f"(tolerance {atol:g} + {rtol:g}·|expected|). {advice}".rstrip())
