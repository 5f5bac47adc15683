"""Bad input gets a clear error that names the argument and shows expected vs
actual; nothing is silently broadcast."""
from __future__ import annotations

import re

import pytest
import torch

import rnncourse
from rnncourse import ShapeError


def raises(exc, *fragments):
    """pytest.raises that also requires every fragment in the message."""
    pattern = "".join(f"(?=.*{re.escape(f)})" for f in fragments)
    return pytest.raises(exc, match=re.compile(pattern, re.S))


@pytest.fixture
def lstm():
    return rnncourse.LSTM(4, 6, num_layers=2)  # expects (T, B, 4); state (2, B, 6)


def test_wrong_feature_size(lstm):
    with raises(ShapeError, "input", "4 features", "got 7", "(5, 3, 7)"):
        lstm(torch.randn(5, 3, 7))


def test_four_dimensional_input(lstm):
    with raises(ShapeError, "input", "(T, B, I) or unbatched (T, I)", "4-D", "(5, 3, 2, 4)"):
        lstm(torch.randn(5, 3, 2, 4))


def test_batch_first_layout_named_in_the_message():
    gru = rnncourse.GRU(4, 6, batch_first=True)
    with raises(ShapeError, "(B, T, I)"):
        gru(torch.randn(4))


def test_wrong_h0_shape(lstm):
    h0, c0 = torch.zeros(1, 3, 6), torch.zeros(2, 3, 6)
    with raises(ShapeError, "h0", "(num_layers * num_directions, B, H) = (2, 3, 6)", "got (1, 3, 6)"):
        lstm(torch.randn(5, 3, 4), (h0, c0))


def test_wrong_c0_shape_is_not_broadcast(lstm):
    # (2, 1, 6) would broadcast against (2, 3, 6); it must be refused.
    h0, c0 = torch.zeros(2, 3, 6), torch.zeros(2, 1, 6)
    with raises(ShapeError, "c0", "(2, 3, 6)", "got (2, 1, 6)"):
        lstm(torch.randn(5, 3, 4), (h0, c0))


def test_lstm_state_must_be_a_pair(lstm):
    with raises(TypeError, "hx", "(h0, c0)", "Tensor"):
        lstm(torch.randn(5, 3, 4), torch.zeros(2, 3, 6))


def test_unbatched_input_with_batched_state():
    rnn = rnncourse.RNN(4, 6)
    with raises(ShapeError, "h0", "unbatched", "(1, 6)", "got (1, 1, 6)"):
        rnn(torch.randn(5, 4), torch.zeros(1, 1, 6))


def test_dtype_mismatch_is_an_error_not_a_cast(lstm):
    # ValueError as in torch.nn (and still a TypeError, as rnncourse raised before)
    with raises(ValueError, "input", "torch.float64", "torch.float32"):
        lstm(torch.randn(5, 3, 4, dtype=torch.float64))
    with raises(TypeError, "input", "torch.float64", "torch.float32"):
        lstm(torch.randn(5, 3, 4, dtype=torch.float64))


def test_state_dtype_mismatch():
    gru = rnncourse.GRU(4, 6)
    with raises(TypeError, "h0", "torch.float64"):
        gru(torch.randn(5, 3, 4), torch.zeros(1, 3, 6, dtype=torch.float64))


def test_input_must_be_a_tensor(lstm):
    with raises(TypeError, "input", "torch.Tensor", "list"):
        lstm([[1.0, 2.0, 3.0, 4.0]])


def test_lengths_not_matching_the_batch():
    gru = rnncourse.GRU(4, 6, batch_first=True)
    with raises(ShapeError, "lengths", "(B,) = (3,)", "got (2,)"):
        gru(torch.randn(3, 5, 4), lengths=torch.tensor([5, 2]))


def test_lengths_out_of_range():
    gru = rnncourse.GRU(4, 6, batch_first=True)
    with raises(ValueError, "lengths", "[1, 5]", "max 9"):
        gru(torch.randn(3, 5, 4), lengths=[5, 9, 1])
    with raises(ValueError, "lengths", "min 0"):
        gru(torch.randn(3, 5, 4), lengths=[5, 0, 1])


def test_lengths_must_be_integers():
    gru = rnncourse.GRU(4, 6, batch_first=True)
    with raises(TypeError, "lengths", "integers"):
        gru(torch.randn(3, 5, 4), lengths=torch.tensor([5.0, 2.0, 1.0]))


def test_empty_sequence():
    with raises(ShapeError, "no time steps"):
        rnncourse.RNN(4, 6)(torch.randn(0, 3, 4))


@pytest.mark.parametrize("name", ["RNNCell", "GRUCell", "LSTMCell"])
def test_cell_errors(name):
    cell = getattr(rnncourse, name)(4, 6)
    with raises(ShapeError, "input", "(B, I) or unbatched (I,)", "3-D"):
        cell(torch.randn(2, 3, 4))
    with raises(ShapeError, "input", "4 features", "got 5"):
        cell(torch.randn(3, 5))
    bad = torch.zeros(1, 6)  # would broadcast over a batch of 3
    hx = (bad, torch.zeros(3, 6)) if name == "LSTMCell" else bad
    with raises(ShapeError, "(B, H) = (3, 6)", "got (1, 6)"):
        cell(torch.randn(3, 4), hx)


def test_constructor_errors():
    with raises(ValueError, "proj_size", "smaller than hidden_size"):
        rnncourse.LSTM(4, 6, proj_size=6)
    with raises(ValueError, "nonlinearity", "sigmoid"):
        rnncourse.RNN(4, 6, nonlinearity="sigmoid")
    with raises(ValueError, "dropout", "1.5"):
        rnncourse.GRU(4, 6, num_layers=2, dropout=1.5)
    with raises(TypeError, "hidden_size", "float"):
        rnncourse.LSTM(4, 6.0)
    with raises(ValueError, "num_layers", "0"):
        rnncourse.LSTM(4, 6, num_layers=0)
    with raises(TypeError, "bias", "str"):
        rnncourse.LSTMCell(4, 6, bias="yes")
    with pytest.warns(UserWarning, match="num_layers greater than 1"):
        rnncourse.LSTM(4, 6, dropout=0.5)
