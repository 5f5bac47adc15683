"""Device mistakes caught on any grader: a run of the learner's code on torch's
meta device.

Most graders have no GPU, so a hidden GPU case rarely runs, and a tensor made
without ``device=`` (a zeros buffer, an identity, an accumulator) passes on the
CPU. A plan that declares ``meta=True`` gets, on its first drawn case, one more
call of the learner's function with every tensor argument moved to the meta
device: tensors there have shapes and dtypes but no values, so the run costs
nothing, and a tensor made on the CPU stands out.

Torch alone lets some CPU/meta mixtures through (``cpu @ meta`` returns a CPU
tensor; ``cpu.mul_(meta)`` too), so the run also goes through
:class:`DeviceAudit`, which refuses any operation that mixes a CPU tensor of one
or more dimensions with a meta tensor, the mixtures a GPU refuses. Operations a
GPU allows across devices (indexing with CPU indices, ``.to``, copying a CPU
tensor into a meta one) pass; a zero-dimensional CPU tensor passes too, as it
does on a GPU.

Correct code that reads values (``.item()``, ``if total > max_norm``,
``.tolist()``) cannot run on the meta device: such a run is inconclusive and
counts as passed (the value cases judge the code); so does any other error the
learner's code raises only there. Only evidence of a device mistake fails: a
mixture the audit saw, or a result that comes back off the inputs' device.
"""
from __future__ import annotations

import contextlib
import io
import warnings

import torch
from torch.overrides import TorchFunctionMode

from rnncourse.checks.cases import Case, Placed
from rnncourse.guard import _tensors, blocked

META = torch.device("meta")
# Operations a GPU runs with CPU operands: indexing with CPU indices, moves, copies
# into the inputs' device. A CPU destination filled from meta fails on its own below.
_CROSS_DEVICE_OK = {"__getitem__", "to", "cpu", "cuda", "_to_copy", "type", "new_tensor", "tensor",
                    "as_tensor", "index_select", "take", "gather", "item", "tolist", "numpy"}
_INTO = {"__setitem__", "copy_", "index_put_", "index_copy_", "masked_scatter_"}
_ADVICE = ("Create new tensors on the inputs' device: torch.zeros(..., device=x.device, "
           "dtype=x.dtype), torch.zeros_like(x), x.new_zeros(...), and don't move results with "
           ".cpu() or .to('cpu').")


class DeviceMixed(RuntimeError):
    """The audit saw a CPU tensor meet the inputs' device."""


def _is_host(t: torch.Tensor) -> bool:
    return t.device.type == "cpu" and t.dim() > 0


class DeviceAudit(TorchFunctionMode):
    """Refuse an operation that mixes a CPU tensor (one or more dimensions) with a
    tensor on ``device``; the first such message is kept in ``seen``."""

    def __init__(self, device: torch.device = META):
        super().__init__()
        self.device = device
        self.seen: list = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "") or str(func)
        tensors = list(_tensors(args, kwargs))
        on_device = any(t.device.type == self.device.type for t in tensors)
        if on_device and _to_cpu(name, args, kwargs) and args[0].dim() > 0:
            # a whole tensor moved off the inputs' device (a 0-dim one is read for its value)
            message = (f"a tensor of shape {tuple(args[0].shape)} was moved to the CPU with "
                       f".{name}(...) while the inputs are on '{self.device.type}'. {_ADVICE}")
            self.seen.append(message)
            raise DeviceMixed(message)
        if on_device:
            first_host = bool(args) and isinstance(args[0], torch.Tensor) and _is_host(args[0])
            into_host = name in _INTO and first_host
            if name in _INTO or name in _CROSS_DEVICE_OK:
                host = into_host or (name == "__getitem__" and first_host)  # a CPU tensor, device indices
            else:
                host = any(_is_host(t) for t in tensors)
            if host:
                shape = next(tuple(t.shape) for t in tensors if _is_host(t))
                what = ("a CPU tensor was filled with values computed on the inputs' device"
                        if into_host else f"a CPU tensor of shape {shape} met the inputs in {name}")
                message = (f"a tensor was created on the CPU while the inputs are on "
                           f"'{self.device.type}' ({what}). {_ADVICE}")
                self.seen.append(message)
                raise DeviceMixed(message)
        return func(*args, **kwargs)


def _to_cpu(name: str, args, kwargs) -> bool:
    """Whether a call moves its first argument, a tensor, to the CPU."""
    if not args or not isinstance(args[0], torch.Tensor) or args[0].device.type == "cpu":
        return False
    if name == "cpu":
        return True
    if name != "to":
        return False
    targets = [*args[1:], kwargs.get("device")]
    return any((isinstance(t, torch.device) and t.type == "cpu") or (isinstance(t, str) and t.startswith("cpu"))
               or (isinstance(t, torch.Tensor) and t.device.type == "cpu") for t in targets)


def _move(value, device: torch.device):
    if isinstance(value, torch.Tensor):
        return value.detach().to(device)
    if isinstance(value, Placed):
        params = []
        for p in value.params:
            q = torch.nn.Parameter(p.detach().to(device), requires_grad=p.requires_grad)
            if p.grad is not None:
                q.grad = p.grad.detach().to(device)
            params.append(q)
        return Placed(tuple(params), value.one_shot).for_learner()
    return value


def _off_device(out, device: torch.device, path: str = "the result"):
    """(path, device) of the first tensor in ``out`` that is not on ``device``."""
    if isinstance(out, torch.Tensor):
        return (path, out.device) if out.device.type != device.type else None
    if isinstance(out, (tuple, list)):
        for i, item in enumerate(out):
            found = _off_device(item, device, f"item {i} of {path}" if path == "the result" else f"{path}[{i}]")
            if found:
                return found
    return None


def device_run(fn, case: Case, exercise: str, blocks, device: torch.device = META) -> str | None:
    """Run ``fn`` on ``case``'s arguments moved to ``device``; the problem found, or None."""
    args = [_move(v, device) for v in case.args.values()]
    audit = DeviceAudit(device)
    try:
        with blocked(exercise, blocks), warnings.catch_warnings(), \
                contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            with audit:
                out = fn(*args)
    except Exception:  # noqa: BLE001 - a value read, or the learner's own bug: the value cases judge it
        out = None
        if not audit.seen:
            return None
    if audit.seen:  # also when the learner's code caught the refusal and carried on
        return audit.seen[0]
    found = _off_device(out, device)
    if found:
        path, where = found
        return (f"{path} is on '{where}' while the inputs are on '{device.type}': a tensor was "
                f"created on the CPU or moved there. {_ADVICE}")
    return None


def device_label(case: Case, device: torch.device = META) -> str:
    dtype = str(case.dtype).replace("torch.", "")
    sizes = ", ".join(f"{k}={v}" for k, v in case.sizes.items())
    return (f"case {case.index + 1} of {case.total} moved to the '{device.type}' device "
            f"(seed {case.seed}, {dtype}; {sizes}; a stand-in for a GPU: shapes, no values)")
