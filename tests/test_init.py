"""rnncourse.kinds (one spelling of the model kinds, the gate rows) and
rnncourse.init (the forget-gate bias, set one way)."""
import pytest
import torch

import rnncourse
from rnncourse.init import add_gate_bias, set_forget_bias, set_gate_bias
from rnncourse.kinds import KINDS, gate_rows, kind_of, kind_of_module


def test_one_spelling_of_the_kinds():
    assert KINDS == ("RNN", "LSTM", "GRU")
    assert kind_of("lstm") == "LSTM" and kind_of("GRU") == "GRU"
    with pytest.raises(ValueError, match="kind must be one of"):
        kind_of("transformer")
    for kind in KINDS:  # the spelling is torch.nn's and rnncourse's class names
        assert getattr(torch.nn, kind) and getattr(rnncourse, kind)


def test_gate_rows_follow_torch_layout():
    assert gate_rows("LSTM", "f", 5) == slice(5, 10)
    assert gate_rows("GRU", "z", 5) == slice(5, 10)
    assert gate_rows("GRU", "n", 5) == slice(10, 15)
    with pytest.raises(ValueError, match="gates"):
        gate_rows("GRU", "f", 5)


def test_kind_of_module():
    assert kind_of_module(torch.nn.LSTM(2, 3)) == "LSTM"
    assert kind_of_module(rnncourse.PeepholeLSTMCell(2, 3)) == "LSTM"
    assert kind_of_module(rnncourse.GRUCell(2, 3)) == "GRU"
    with pytest.raises(ValueError):
        kind_of_module(torch.nn.Linear(2, 3))


@pytest.mark.parametrize("make", [lambda: torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True),
                                  lambda: torch.nn.LSTMCell(3, 4), lambda: rnncourse.LSTM(3, 4)])
def test_forget_bias_sets_the_sum_on_the_forget_rows_only(make):
    torch.manual_seed(0)
    lstm = make()
    before = {n: p.detach().clone() for n, p in lstm.named_parameters()}
    set_forget_bias(lstm, 1.0)
    params = dict(lstm.named_parameters())
    for name in params:
        if name.startswith("bias_ih"):
            total = params[name] + params[name.replace("bias_ih", "bias_hh")]
            assert torch.all(total[4:8] == 1.0)
            assert torch.equal(params[name][:4], before[name][:4])  # other gates untouched
            assert torch.equal(params[name][8:], before[name][8:])
        elif not name.startswith("bias"):
            assert torch.equal(params[name], before[name])


def test_reference_and_torch_lstm_agree_after_setting_the_bias():
    torch.manual_seed(0)
    ours = set_forget_bias(rnncourse.LSTM(3, 4, batch_first=True), 2.0)
    theirs = torch.nn.LSTM(3, 4, batch_first=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 5, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


def test_add_gate_bias_shifts_b_ih_and_keeps_the_spread():
    torch.manual_seed(0)
    gru = torch.nn.GRU(3, 4)
    b_ih, b_hh = gru.bias_ih_l0.detach().clone(), gru.bias_hh_l0.detach().clone()
    add_gate_bias(gru, "z", 3.0)
    torch.testing.assert_close(gru.bias_ih_l0[4:8], b_ih[4:8] + 3.0)
    assert torch.equal(gru.bias_hh_l0, b_hh)
    set_gate_bias(gru, "z", 0.5)
    assert torch.all(gru.bias_ih_l0[4:8] + gru.bias_hh_l0[4:8] == 0.5)
