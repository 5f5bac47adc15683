"""The three kinds of recurrent layer, spelled once: "RNN", "LSTM", "GRU".

The spelling is torch.nn's class names, so ``getattr(torch.nn, kind)`` and
``getattr(rnncourse, kind)`` are the layer. Experiments, explorations and saved
runs name a model by its kind; :func:`kind_of` accepts any letter case (lesson
03's saved runs and its notebook say "rnn" and "lstm") and returns the one spelling.

Gate rows follow PyTorch's layout: an LSTM's stacked weights and biases hold the
gates in the order (i, f, g, o), a GRU's in (r, z, n), each ``hidden_size`` rows.
"""
from __future__ import annotations

KINDS = ("RNN", "LSTM", "GRU")

GATES = {"RNN": ("h",), "LSTM": ("i", "f", "g", "o"), "GRU": ("r", "z", "n")}


def kind_of(kind: str) -> str:
    """The course's spelling of ``kind`` ("lstm" -> "LSTM"); ValueError if it is none of KINDS."""
    canonical = kind.upper() if isinstance(kind, str) else kind
    if canonical not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    return canonical


def kind_of_module(module) -> str:
    """The kind of a recurrent layer or cell (torch.nn's or rnncourse's), from its class name."""
    name = type(module).__name__
    for kind in ("LSTM", "GRU", "RNN"):  # LSTM first: "PeepholeLSTMCell"
        if kind in name:
            return kind
    raise ValueError(f"{name} is not an RNN, LSTM or GRU layer or cell")


def gate_rows(kind: str, gate: str, hidden_size: int) -> slice:
    """The rows of ``gate`` in a stacked weight or bias of a ``kind`` layer,
    e.g. ``gate_rows("LSTM", "f", H)`` is ``slice(H, 2 * H)``."""
    gates = GATES[kind_of(kind)]
    if gate not in gates:
        raise ValueError(f"a {kind_of(kind)} has gates {gates}, not {gate!r}")
    k = gates.index(gate)
    return slice(k * hidden_size, (k + 1) * hidden_size)
