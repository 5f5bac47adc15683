"""Argument checks that fail loudly and say what was expected.

torch.nn's recurrent modules raise terse errors deep in C++ (or, for some
mistakes, broadcast silently). The reference models check everything up front
and name the argument, the expected shape with its legend, and what arrived:

    ShapeError: h0 must have shape (num_layers * num_directions, B, H) = (2, 3, 20), got (1, 3, 20)

``ShapeError`` derives from both ``ValueError`` and ``RuntimeError`` so code
written against torch.nn (which raises RuntimeError for most shape errors,
ValueError for a wrong number of dimensions) still catches it. ``DTypeError``
likewise derives from ``ValueError`` (torch.nn's type for an input whose dtype
is not the weights'), ``RuntimeError`` (its type for a state or cell input of
the wrong dtype) and ``TypeError`` (what rnncourse raised before).
"""
from __future__ import annotations

from typing import Sequence

import torch


class ShapeError(ValueError, RuntimeError):
    """A tensor argument has the wrong number of dimensions or the wrong size."""


class DTypeError(ValueError, RuntimeError, TypeError):
    """A tensor argument has a different dtype from the tensors it must match."""


class DeviceError(ValueError, RuntimeError):
    """A tensor argument is on a different device from the tensors it must match."""


def _shape(t: torch.Tensor) -> tuple:
    return tuple(t.shape)


def check_tensor(name: str, value) -> torch.Tensor:
    """``value`` must be a tensor."""
    if not isinstance(value, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    return value


def check_dims(name: str, t: torch.Tensor, allowed: Sequence[int], meaning: str) -> None:
    """``t.dim()`` must be one of ``allowed``; ``meaning`` spells the layouts out."""
    if t.dim() not in allowed:
        raise ShapeError(
            f"{name} must be {meaning}, got a {t.dim()}-D tensor of shape {_shape(t)}"
        )


def check_shape(name: str, t: torch.Tensor, expected: Sequence[int], legend: str) -> None:
    """``t`` must have exactly shape ``expected``; ``legend`` names its axes, e.g. '(B, H)'."""
    expected = tuple(int(s) for s in expected)
    if _shape(t) != expected:
        raise ShapeError(f"{name} must have shape {legend} = {expected}, got {_shape(t)}")


def check_like(name: str, t: torch.Tensor, ref: torch.Tensor, ref_name: str) -> None:
    """``t`` must share dtype and device with ``ref`` (the module's parameters, usually).

    Mixing float32 and float64 or CPU and GPU is almost always an accident, and
    a silent cast would hide it, so it is an error here as in torch.nn.
    """
    if t.dtype != ref.dtype:
        raise DTypeError(
            f"{name} has dtype {t.dtype} but {ref_name} has dtype {ref.dtype}; "
            f"convert one of them (e.g. {name}.to({ref.dtype}) or model.to({t.dtype}))"
        )
    if t.device != ref.device:
        raise DeviceError(
            f"{name} is on device {t.device} but {ref_name} is on {ref.device}; "
            f"move them to the same device (e.g. {name}.to({str(ref.device)!r}))"
        )


def check_feature_size(name: str, t: torch.Tensor, expected: int, what: str) -> None:
    """The last axis of ``t`` must have ``expected`` features."""
    if t.shape[-1] != expected:
        raise ShapeError(
            f"{name} must have {expected} features in its last dimension ({what}), "
            f"got {t.shape[-1]} (shape {_shape(t)})"
        )


def check_lengths(lengths, B: int, T: int, lowest: int = 1) -> torch.Tensor:
    """``lengths`` of a padded batch as a (B,) integer tensor with every value in
    [lowest, T] (a list or tuple is converted); values are not read on the meta device."""
    if not isinstance(lengths, torch.Tensor):
        lengths = torch.as_tensor(lengths)
    if lengths.dtype == torch.bool or lengths.is_floating_point() or lengths.is_complex():
        raise TypeError(f"lengths must hold integers, got dtype {lengths.dtype}")
    if tuple(lengths.shape) != (B,):
        raise ShapeError(f"lengths must have shape (B,) = ({B},), one length per sequence, "
                         f"got {_shape(lengths)}")
    if lengths.device.type != "meta" and B > 0:
        lo, hi = int(lengths.min()), int(lengths.max())
        if lo < lowest or hi > T:
            raise ValueError(f"lengths must lie in [{lowest}, T] = [{lowest}, {T}], got min {lo} and max {hi}")
    return lengths
