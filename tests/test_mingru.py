"""rnncourse.mingru: minGRU and minLSTM layers. The three modes and the step-by-step
stream compute one function (float64); padded input with lengths equals each sequence
run alone; gradcheck; the equations by hand; devices, dtypes and bad input."""
import pytest
import torch

from rnncourse.guard import REFERENCE_MODELS, BlockedError, blocked
from rnncourse.mingru import MODES, MinGRU, MinGRUModel, MinLSTM, mingru_step, minlstm_step
from rnncourse.validation import DTypeError, ShapeError

D = torch.float64


def layer(cls, I=3, H=5, L=2, seed=0, **kw):
    torch.manual_seed(seed)
    return cls(I, H, num_layers=L, dtype=D, **kw)


def data(B=4, T=9, I=3, H=5, L=2, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(B, T, I, generator=gen, dtype=D), torch.randn(L, B, H, generator=gen, dtype=D)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_modes_agree_and_match_the_equations_by_hand(cls):
    m = layer(cls)
    x, h0 = data()
    outs = {}
    for mode in MODES:
        m.mode = mode
        outs[mode] = m(x, h0)
    # by hand, from the docstring's equations
    inp, finals = x, []
    for k in range(2):
        W, b = m.layer_weights(k)
        h, states = h0[k], []
        for t in range(x.shape[1]):
            g = inp[:, t] @ W.T + b
            if cls is MinGRU:
                z, cand = torch.sigmoid(g[:, :5]), g[:, 5:]
                h = (1 - z) * h + z * cand
            else:
                f, i, cand = torch.sigmoid(g[:, :5]), torch.sigmoid(g[:, 5:10]), g[:, 10:]
                h = f / (f + i) * h + i / (f + i) * cand
            states.append(h)
        inp = torch.stack(states, 1)
        finals.append(h)
    for mode, (out, h_n) in outs.items():
        torch.testing.assert_close(out, inp, atol=1e-12, rtol=1e-10, msg=mode)
        torch.testing.assert_close(h_n, torch.stack(finals), atol=1e-12, rtol=1e-10, msg=mode)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_step_by_step_stream_equals_the_whole_sequence(cls):
    m = layer(cls)
    x, h0 = data()
    out, h_n = m(x, h0)
    hx, ys = h0, []
    for t in range(x.shape[1]):
        y, hx = m.step(x[:, t], hx)
        ys.append(y)
    torch.testing.assert_close(torch.stack(ys, 1), out, atol=1e-12, rtol=0)
    torch.testing.assert_close(hx, h_n, atol=1e-12, rtol=0)
    step = mingru_step if cls is MinGRU else minlstm_step
    torch.testing.assert_close(step(x[:, 0], h0[0], *m.layer_weights(0)), m(x[:, :1], h0)[1][0])


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
def test_padded_input_with_lengths_equals_each_sequence_alone(cls, mode):
    m = layer(cls, mode=mode)
    x, h0 = data(B=5, T=8)
    lengths = torch.tensor([8, 3, 1, 6, 8])
    out, h_n = m(x, h0, lengths=lengths)
    for i, n in enumerate(lengths.tolist()):
        alone, h_alone = m(x[i:i + 1, :n], h0[:, i:i + 1].contiguous())
        torch.testing.assert_close(out[i, :n], alone[0], atol=1e-12, rtol=1e-10)
        assert (out[i, n:] == 0).all()
        torch.testing.assert_close(h_n[:, i], h_alone[:, 0], atol=1e-12, rtol=1e-10)


def test_time_first_unbatched_and_no_bias():
    m = layer(MinGRU, batch_first=False, bias=False)
    assert m.bias_ih_l0 is None and len(list(m.parameters())) == 2
    x, h0 = data()
    out, h_n = m(x.transpose(0, 1), h0)
    ref = layer(MinGRU, bias=False)
    out_bf, h_bf = ref(x, h0)
    torch.testing.assert_close(out.transpose(0, 1), out_bf)
    one, h_one = ref(x[0], h0[:, 0])
    torch.testing.assert_close(one, out_bf[0])
    assert h_one.shape == (2, 5)


@pytest.mark.parametrize("cls", [MinGRU, MinLSTM])
@pytest.mark.parametrize("mode", MODES)
def test_gradcheck(cls, mode):
    m = layer(cls, I=2, H=3, L=2, mode=mode)
    x, h0 = data(B=2, T=5, I=2, H=3)
    x.requires_grad_(), h0.requires_grad_()
    names = [n for n, _ in m.named_parameters()]
    weights = [p.detach().clone().requires_grad_() for p in m.parameters()]

    def f(x, h0, *ws):  # the layer as a function of its input, state and weights
        return torch.func.functional_call(m, dict(zip(names, ws)), (x, h0))
    assert torch.autograd.gradcheck(f, (x, h0, *weights))


def test_parameters_shapes_and_counts():
    g, l = MinGRU(4, 6, num_layers=2), MinLSTM(4, 6)
    assert [tuple(p.shape) for p in g.parameters()] == [(12, 4), (12,), (12, 6), (12,)]
    assert [n for n, _ in l.named_parameters()] == ["weight_ih_l0", "bias_ih_l0"]
    assert l.weight_ih_l0.shape == (18, 4)
    # minGRU has 2H(I + 1) parameters against nn.GRU's 3H(I + H + 2)
    assert sum(p.numel() for p in MinGRU(10, 20).parameters()) == 2 * 20 * 11
    bound = 1 / 6 ** 0.5
    assert all(p.abs().max() <= bound for p in g.parameters())


def test_devices_and_dtypes():
    m = MinGRU(3, 4, device="meta")
    out, h_n = m(torch.empty(2, 5, 3, device="meta"))
    assert out.device.type == "meta" and out.shape == (2, 5, 4) and h_n.shape == (1, 2, 4)
    m32 = MinLSTM(3, 4)
    with pytest.raises(DTypeError, match="input has dtype torch.float64"):
        m32(torch.randn(2, 5, 3, dtype=D))
    assert m32.to(D)(torch.randn(2, 5, 3, dtype=D))[0].dtype == D


def test_bad_input_names_the_argument():
    m = layer(MinGRU)
    x, h0 = data()
    with pytest.raises(ShapeError, match=r"hx must have shape \(num_layers, B, H\) = \(2, 4, 5\)"):
        m(x, h0[:1])
    with pytest.raises(ShapeError, match=r"input must have 3 features"):
        m(x[..., :2])
    with pytest.raises(ShapeError, match=r"lengths must have shape \(B,\) = \(4,\)"):
        m(x, lengths=torch.tensor([1, 2]))
    with pytest.raises(ValueError, match=r"lengths must lie in \[1, T\] = \[1, 9\]"):
        m(x, lengths=torch.tensor([0, 2, 3, 9]))
    with pytest.raises(TypeError, match="lengths must hold integers"):
        m(x, lengths=torch.tensor([1.0, 2, 3, 4]))
    with pytest.raises(ValueError, match="mode must be one of"):
        MinGRU(3, 4, mode="fast")
    with pytest.raises(ShapeError, match=r"x_t must be \(B, I\)"):
        m.step(x)


def test_model_head_at_every_step_and_blocked_while_checking():
    torch.manual_seed(0)
    model = MinGRUModel(3, 5, 2, num_layers=2).double()
    x, _ = data()
    y = model(x)
    assert y.shape == (4, 9, 2)
    with blocked("stream_step", (REFERENCE_MODELS,)), pytest.raises(BlockedError, match="minGRU"):
        model(x)
