"""Drop-in behaviour of the reference models beyond the numbers: parameters,
initialisation, state_dicts, repr, gradcheck, no fused kernels, the meta
device, the peephole cell and the ``lengths`` extra."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnncourse
from rnncourse.guard import BlockedError, blocked, fused_kernels_blocked

LAYERS = [("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("LSTM", {}), ("GRU", {})]
CELLS = ["RNNCell", "LSTMCell", "GRUCell"]
CONFIG = dict(num_layers=2, bidirectional=True, bias=True)


@pytest.mark.parametrize("name,extra", LAYERS)
@pytest.mark.parametrize("bias", [True, False])
def test_same_parameters_and_initialisation_as_torch_nn(name, extra, bias):
    torch.manual_seed(7)
    tnn = getattr(nn, name)(10, 20, num_layers=3, bidirectional=True, bias=bias, **extra)
    torch.manual_seed(7)
    ref = getattr(rnncourse, name)(10, 20, num_layers=3, bidirectional=True, bias=bias, **extra)
    want = [(n, p.shape) for n, p in tnn.named_parameters()]
    assert [(n, p.shape) for n, p in ref.named_parameters()] == want
    for (n, p), q in zip(tnn.named_parameters(), ref.parameters()):
        assert torch.equal(p, q), f"{n}: same seed must draw the same initial weights"


@pytest.mark.parametrize("name", CELLS)
def test_cells_same_parameters_and_initialisation(name):
    torch.manual_seed(3)
    tnn = getattr(nn, name)(10, 20)
    torch.manual_seed(3)
    ref = getattr(rnncourse, name)(10, 20)
    for (n, p), (m, q) in zip(tnn.named_parameters(), ref.named_parameters()):
        assert n == m and torch.equal(p, q)


@pytest.mark.parametrize("name,extra", LAYERS)
def test_state_dict_loads_both_ways_and_repr_matches(name, extra):
    tnn = getattr(nn, name)(4, 6, **CONFIG, batch_first=True, dropout=0.25, **extra)
    ref = getattr(rnncourse, name)(4, 6, **CONFIG, batch_first=True, dropout=0.25, **extra)
    ref.load_state_dict(tnn.state_dict(), strict=True)
    tnn.load_state_dict(ref.state_dict(), strict=True)
    # torch.nn.RNN's repr leaves out nonlinearity='relu'; ours shows it on purpose.
    assert repr(ref).replace(", nonlinearity=relu", "") == repr(tnn)
    assert [[p.shape for p in w] for w in ref.all_weights] == [[p.shape for p in w] for w in tnn.all_weights]


def test_parameter_counts_quoted_in_the_syllabus():
    count = lambda m: sum(p.numel() for p in m.parameters())
    assert count(rnncourse.RNN(10, 20)) == 640
    assert count(rnncourse.GRU(10, 20)) == 1920
    assert count(rnncourse.LSTM(10, 20)) == 2560
    assert count(rnncourse.LSTM(10, 20, bidirectional=True)) == 5120
    assert count(rnncourse.LSTM(10, 20, num_layers=2)) == 5920
    assert count(rnncourse.LSTM(10, 20, num_layers=2, bidirectional=True)) == 15040


@pytest.mark.parametrize("name,extra", LAYERS)
@pytest.mark.parametrize("packed", [False, True])
def test_gradcheck_layers(name, extra, packed):
    torch.manual_seed(0)
    model = getattr(rnncourse, name)(3, 2, num_layers=2, bidirectional=True, **extra).double()
    x = torch.randn(4, 3, 3, dtype=torch.float64, requires_grad=True)
    names = [n for n, _ in model.named_parameters()]

    def f(x, *ps):
        # functional_call routes the parameters through f, so gradcheck perturbs them too.
        inp = pack_padded_sequence(x, torch.tensor([4, 2, 3]), enforce_sorted=False) if packed else x
        out, final = torch.func.functional_call(model, dict(zip(names, ps)), (inp,))
        final = final if isinstance(final, tuple) else (final,)
        return (out.data if packed else out), *final

    ps = [p.detach().clone().requires_grad_(True) for p in model.parameters()]
    assert torch.autograd.gradcheck(f, (x, *ps), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", CELLS + ["PeepholeLSTMCell"])
def test_gradcheck_cells(name):
    torch.manual_seed(0)
    cell = getattr(rnncourse, name)(3, 2).double()
    x = torch.randn(4, 3, dtype=torch.float64, requires_grad=True)
    h = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    c = torch.randn(4, 2, dtype=torch.float64, requires_grad=True)
    lstm = "LSTM" in name
    names = [n for n, _ in cell.named_parameters()]
    ps = [p.detach().clone().requires_grad_(True) for p in cell.parameters()]

    def f(x, h, c, *ps):
        out = torch.func.functional_call(cell, dict(zip(names, ps)), (x, (h, c) if lstm else h))
        return out

    assert torch.autograd.gradcheck(f, (x, h, c, *ps), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name,extra", LAYERS)
def test_no_fused_kernel_is_called(name, extra):
    model = getattr(rnncourse, name)(4, 6, **CONFIG, **extra)
    x = torch.randn(5, 3, 4, requires_grad=True)
    with fused_kernels_blocked():
        out, _ = model(x)
        out.sum().backward()
        model(pack_padded_sequence(x, torch.tensor([5, 2, 4]), enforce_sorted=False))
        for cell in CELLS:
            getattr(rnncourse, cell)(4, 6)(x[0])
        rnncourse.PeepholeLSTMCell(4, 6)(x[0])


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU", "RNNCell", "LSTMCell", "GRUCell"])
def test_the_kernel_guard_can_fail(name):
    """The test above would be worthless if the guard let torch.nn through."""
    model = getattr(nn, name)(4, 6)
    x = torch.randn(5, 3, 4)
    with pytest.raises(BlockedError, match="fused recurrent kernel"):
        with fused_kernels_blocked():
            model(x if "Cell" not in name else x[0])


def test_reference_models_are_blocked_inside_an_exercise_check():
    model = rnncourse.LSTM(4, 6)
    with pytest.raises(BlockedError, match="rnncourse.LSTM"):
        with blocked("lstm_forward"):
            model(torch.randn(5, 3, 4))
    model(torch.randn(5, 3, 4))  # and allowed again afterwards


@pytest.mark.parametrize("name,extra", LAYERS)
def test_meta_device_forward(name, extra):
    model = getattr(rnncourse, name)(4, 6, **CONFIG, batch_first=True, device="meta", **extra)
    out, final = model(torch.empty(3, 5, 4, device="meta"))
    assert out.device.type == "meta" and out.shape == (3, 5, 12)
    final = final if isinstance(final, tuple) else (final,)
    assert all(f.shape == (4, 3, 6) and f.device.type == "meta" for f in final)
    for cell in CELLS:
        out = getattr(rnncourse, cell)(4, 6, device="meta")(torch.empty(3, 4, device="meta"))
        assert (out[0] if isinstance(out, tuple) else out).shape == (3, 6)


def test_peephole_cell_reduces_to_lstm_cell_with_zero_peepholes():
    torch.manual_seed(0)
    peep = rnncourse.PeepholeLSTMCell(4, 6).double()
    torch.manual_seed(0)
    plain = nn.LSTMCell(4, 6).double()
    for n, p in plain.named_parameters():
        assert torch.equal(p, getattr(peep, n)), "same seed, same LSTM weights"
    assert {n for n, _ in peep.named_parameters()} - {n for n, _ in plain.named_parameters()} == {
        "weight_ci", "weight_cf", "weight_co"}
    x, h, c = (torch.randn(3, k, dtype=torch.float64) for k in (4, 6, 6))
    h1, c1 = peep(x, (h, c))
    h2, c2 = plain(x, (h, c))
    assert (h1 - h2).abs().max() > 1e-3, "random peepholes must change the result"
    with torch.no_grad():
        for n in ("weight_ci", "weight_cf", "weight_co"):
            getattr(peep, n).zero_()
    h1, c1 = peep(x, (h, c))
    assert torch.allclose(h1, h2, atol=1e-12) and torch.allclose(c1, c2, atol=1e-12)


def test_peephole_output_gate_sees_the_new_cell_state():
    peep = rnncourse.PeepholeLSTMCell(2, 3).double()
    with torch.no_grad():
        for n in ("weight_ci", "weight_cf"):
            getattr(peep, n).zero_()
        peep.weight_co.fill_(5.0)
    x, h, c = torch.randn(1, 2).double(), torch.zeros(1, 3).double(), torch.zeros(1, 3).double()
    W = peep.weight_ih @ x[0] + peep.bias_ih + peep.bias_hh
    i, f, g, o = W.chunk(4)
    c_new = torch.sigmoid(i) * torch.tanh(g)
    want = torch.sigmoid(o + 5.0 * c_new) * torch.tanh(c_new)
    got, _ = peep(x, (h, c))
    assert torch.allclose(got[0], want, atol=1e-12)


@pytest.mark.parametrize("name", ["RNN", "LSTM", "GRU"])
@pytest.mark.parametrize("batch_first", [False, True])
def test_lengths_equals_packing(name, batch_first):
    torch.manual_seed(0)
    model = getattr(rnncourse, name)(4, 6, num_layers=2, bidirectional=True,
                                     batch_first=batch_first).double()
    x = torch.randn((3, 5, 4) if batch_first else (5, 3, 4), dtype=torch.float64)
    lengths = [2, 5, 3]
    out, final = model(x, lengths=torch.tensor(lengths))
    final = final if isinstance(final, tuple) else (final,)
    for b, n in enumerate(lengths):
        xb = x[b, :n] if batch_first else x[:n, b]
        ob, fb = model(xb)  # unbatched, exactly its real tokens
        fb = fb if isinstance(fb, tuple) else (fb,)
        got = out[b, :n] if batch_first else out[:n, b]
        assert torch.allclose(got, ob, atol=1e-12)
        pad = out[b, n:] if batch_first else out[n:, b]
        assert torch.all(pad == 0)
        for f, g in zip(final, fb):
            assert torch.allclose(f[:, b], g, atol=1e-12)


def test_padding_without_packing_changes_the_final_state():
    """A fact the course relies on (docs/course.md): running padding through the loop gives a different final
    state for the short sequences than running them alone; packing does not."""
    torch.manual_seed(0)
    model = rnncourse.LSTM(4, 6, batch_first=True).double()
    x = torch.randn(2, 5, 4, dtype=torch.float64)
    x[1, 2:] = 0.0  # sequence 1 has 2 real steps, then padding
    _, (h_pad, _) = model(x)
    _, (h_alone, _) = model(x[1, :2])
    _, (h_len, _) = model(x, lengths=[5, 2])
    assert (h_pad[0, 1] - h_alone[0]).abs().max() > 1e-3
    assert torch.allclose(h_len[0, 1], h_alone[0], atol=1e-12)
