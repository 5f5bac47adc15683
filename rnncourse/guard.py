"""Block PyTorch's fused recurrent kernels and the reference models.

Two uses:

* the reference models' own tests prove the models never call a fused kernel
  (``with fused_kernels_blocked(): model(x)``);
* the checking library runs a learner's from-scratch exercise inside
  ``blocked("rnn_step")`` so that calling ``torch.nn.RNN``, ``torch.lstm_cell``
  or ``rnncourse.LSTM`` instead of writing the math fails with a message that
  says why, rather than scoring full marks.

Kernels are caught with a ``TorchFunctionMode``: every route to them
(``torch.nn.LSTM``, ``torch._VF.lstm``, ``torch.lstm_cell``,
``torch.ops.aten.gru_cell``) passes through it. The reference models cannot be
caught that way (they are plain tensor ops), so each of their forwards asks
:func:`check_reference_allowed` first.
"""
from __future__ import annotations

import re
from contextlib import contextmanager
from typing import Iterator

from torch.overrides import TorchFunctionMode

# Names of the fused recurrent ops (the overload suffix, e.g. ".default", is cut first).
_FUSED = re.compile(
    r"^(rnn_(tanh|relu)(_cell)?|lstm(_cell)?|gru(_cell)?|_thnn_fused_(lstm|gru)_cell"
    r"|_cudnn_rnn|miopen_rnn|mkldnn_rnn(_layer)?|_lstm_mps|quantized_(lstm|gru|rnn_\w+)(_cell)?)$"
)


class BlockedError(RuntimeError):
    """A blocked recurrent kernel or reference model was called."""


def _op_name(func) -> str:
    name = getattr(func, "__name__", "") or str(func)
    return name.split(".")[0]


class _KernelBlocker(TorchFunctionMode):
    def __init__(self, why: str):
        super().__init__()
        self.why = why

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = _op_name(func)
        if _FUSED.match(name):
            raise BlockedError(
                f"torch's fused recurrent kernel '{name}' was called {self.why}. "
                "torch.nn.RNN/LSTM/GRU and their cells call it; write the step from "
                "tensor operations (matmul, +, tanh, sigmoid, ...) instead."
            )
        return func(*args, **(kwargs or {}))


_reference_block: list = []  # stack of reasons; non-empty while blocked


def check_reference_allowed(model: str) -> None:
    """Raise :class:`BlockedError` if the reference models are blocked right now."""
    if _reference_block:
        raise BlockedError(
            f"rnncourse.{model} was called {_reference_block[-1]}. The reference models "
            "are what your code is checked against, so they are switched off while it "
            "runs: implement the computation yourself."
        )


@contextmanager
def fused_kernels_blocked(why: str = "inside a block that forbids it") -> Iterator[None]:
    """Inside the block, any fused recurrent kernel raises :class:`BlockedError`."""
    with _KernelBlocker(why):
        yield


@contextmanager
def blocked(exercise: str) -> Iterator[None]:
    """Block fused kernels, torch.nn's recurrent modules and the reference models
    while the learner's code for ``exercise`` runs."""
    why = f"while checking your '{exercise}', a from-scratch exercise"
    _reference_block.append(why)
    try:
        with _KernelBlocker(why):
            yield
    finally:
        _reference_block.pop()
