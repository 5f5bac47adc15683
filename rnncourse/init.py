"""Initialising a gate's bias: the forget-gate bias of lessons 03–05, in one place.

A gate's pre-activation adds two biases, ``bias_ih`` and ``bias_hh`` (torch's
names), so "the forget bias" is their sum over the gate's rows. Two operations:

* :func:`set_gate_bias` makes the sum exactly ``value`` (``bias_ih`` rows =
  value, ``bias_hh`` rows = 0): the usual forget-bias-1 initialisation
  (Jozefowicz et al., 2015), used by lessons 03 and 04;
* :func:`add_gate_bias` adds ``delta`` to the ``bias_ih`` rows and keeps the
  random initial spread around it: lesson 05's experiment opens its keep gates
  this way, and its saved runs were trained so.

Both work on torch.nn's and rnncourse's layers and cells, every layer and
direction (parameters named ``bias_ih``, ``bias_ih_l0``, ``bias_ih_l1_reverse``...).
"""
from __future__ import annotations

import torch

from rnncourse.kinds import gate_rows, kind_of_module


def _gate_biases(module: torch.nn.Module, gate: str):
    rows = gate_rows(kind_of_module(module), gate, module.hidden_size)
    for name, p in module.named_parameters():
        if name.startswith(("bias_ih", "bias_hh")):
            yield name.startswith("bias_ih"), p, rows


def set_gate_bias(module: torch.nn.Module, gate: str, value: float) -> torch.nn.Module:
    """Make ``bias_ih + bias_hh`` equal ``value`` on ``gate``'s rows; returns the module."""
    with torch.no_grad():
        for is_ih, p, rows in _gate_biases(module, gate):
            p[rows] = value if is_ih else 0.0  # the biases add: value + 0
    return module


def add_gate_bias(module: torch.nn.Module, gate: str, delta: float) -> torch.nn.Module:
    """Add ``delta`` to ``bias_ih`` on ``gate``'s rows (``bias_hh`` unchanged); returns the module."""
    with torch.no_grad():
        for is_ih, p, rows in _gate_biases(module, gate):
            if is_ih:
                p[rows] += delta
    return module


def set_forget_bias(lstm: torch.nn.Module, value: float) -> torch.nn.Module:
    """An LSTM's forget-gate bias (rows H..2H of the (i, f, g, o) layout), summed, set to ``value``."""
    return set_gate_bias(lstm, "f", value)
