"""rnncourse: the helper package of the rnncourse notebooks.

Reference recurrent models (drop-in for their torch.nn namesakes, written from
tensor operations), device and seeding helpers. Submodules hold the rest:
``rnncourse.functional`` (the step equations), ``rnncourse.checks`` (what graded
test cells call), ``rnncourse.explore`` (widget logic), ``rnncourse.train``.
"""
from .cells import GRUCell, LSTMCell, RNNCell
from .device import fast_mode, get_device, seed_everything
from .peephole import PeepholeLSTMCell
from .recurrent import GRU, LSTM, RNN
from .validation import ShapeError

__all__ = [
    "RNNCell", "LSTMCell", "GRUCell", "PeepholeLSTMCell", "RNN", "LSTM", "GRU",
    "get_device", "seed_everything", "fast_mode", "ShapeError",
]
__version__ = "0.1.0"
