"""Second-order and batched (vmap) gradients of the reference models, against
torch.nn. The LSTM's backward is written by hand (rnncourse/lstm_bptt.py); these
tests make sure that it never hides the graph a higher-order gradient needs
(gradient penalties, Hessian-vector products, meta-learning), and that it runs
under vmap (gradcheck's batched-gradient check, ``is_grads_batched``)."""
from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.autograd import gradcheck, gradgradcheck
from torch.func import functional_call

import rnncourse
from rnncourse import lstm_bptt

F64 = torch.float64
LAYERS = [("LSTM", {}), ("LSTM", {"proj_size": 2}), ("RNN", {}), ("RNN", {"nonlinearity": "relu"}),
          ("GRU", {})]


def pair(name, *args, **kw):
    torch.manual_seed(0)
    tnn = getattr(nn, name)(*args, **kw).double()
    ref = getattr(rnncourse, name)(*args, **kw).double()
    ref.load_state_dict(tnn.state_dict(), strict=True)
    return tnn, ref


def leaf(*shape, seed=1):
    return torch.randn(*shape, dtype=F64, generator=torch.Generator().manual_seed(seed)).requires_grad_()


def with_params(model):
    """f(x, *params) -> output, so that gradcheck varies the weights too."""
    names = [n for n, _ in model.named_parameters()]
    return lambda x, *ps: functional_call(model, dict(zip(names, ps)), (x,))[0]


@pytest.mark.parametrize("name,extra", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_gradgradcheck_input_and_state(name, extra, batch_first):
    _, model = pair(name, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, **extra)
    x = leaf(2, 3, 3) if batch_first else leaf(3, 2, 3)
    P = extra.get("proj_size") or 4
    h0 = leaf(4, 2, P, seed=2)
    state = (h0, leaf(4, 2, 4, seed=3)) if name == "LSTM" else (h0,)
    call = (lambda x, h, c: model(x, (h, c))[0]) if name == "LSTM" else (lambda x, h: model(x, h)[0])
    assert gradgradcheck(call, (x, *state), check_batched_grad=True)


@pytest.mark.parametrize("name,extra", LAYERS)
def test_gradgradcheck_weights(name, extra):
    _, model = pair(name, 2, 3, bidirectional=True, **extra)
    assert gradgradcheck(with_params(model), (leaf(3, 2, 2), *model.parameters()),
                         check_batched_grad=True)


@pytest.mark.parametrize("reverse", [False, True])
def test_lstm_scan_gradgradcheck_no_bias(reverse):
    # The Function itself, one direction, no bias, reverse or not.
    x, w_ih, w_hh = leaf(4, 2, 3), leaf(12, 3, seed=2), leaf(12, 3, seed=3)
    h0, c0 = leaf(2, 3, seed=4), leaf(2, 3, seed=5)
    f = lambda *a: lstm_bptt.LSTMScan.apply(a[0], a[1], None, a[2], a[3], a[4], reverse)
    assert gradcheck(f, (x, w_ih, h0, c0, w_hh), check_batched_grad=True)
    assert gradgradcheck(f, (x, w_ih, h0, c0, w_hh), check_batched_grad=True)


def gradient_penalty_grads(model, x):
    """d/d(params, x) of ||d(sum out^2)/dx||^2: a WGAN-GP style loss."""
    x = x.detach().clone().requires_grad_()
    out = model(x)[0]
    g, = torch.autograd.grad(out.pow(2).sum(), x, create_graph=True)
    model.zero_grad(set_to_none=True)
    g.pow(2).sum().backward()
    return [x.grad] + [p.grad for p in model.parameters()]


@pytest.mark.parametrize("name,extra", LAYERS)
@pytest.mark.parametrize("kw", [{}, {"num_layers": 3, "batch_first": True}, {"bidirectional": True}])
def test_gradient_penalty_matches_torch(name, extra, kw):
    tnn, ref = pair(name, 3, 5, **kw, **extra)
    x = leaf(4, 6, 3)
    for got, want in zip(gradient_penalty_grads(ref, x), gradient_penalty_grads(tnn, x)):
        assert got is not None and (got - want).abs().max().item() < 1e-10


def test_input_gradient_with_create_graph_has_a_graph():
    # The silent bug this file exists for: the gradient must carry a graph.
    model = rnncourse.LSTM(3, 4).double()
    x = leaf(5, 2, 3)
    g, = torch.autograd.grad(model(x)[0].sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None


def test_hessian_vector_product_matches_torch():
    tnn, ref = pair("LSTM", 3, 4, num_layers=2)
    x, v = leaf(5, 2, 3), leaf(5, 2, 3, seed=9)
    hvps = []
    for model in (ref, tnn):
        f = lambda x: model(x)[0].tanh().sum()
        hvps.append(torch.autograd.functional.hvp(f, x, v)[1])
    assert (hvps[0] - hvps[1]).abs().max().item() < 1e-10


def test_plain_training_uses_the_hand_written_backward(monkeypatch):
    # The autograd fallback recomputes the forward: ordinary training must not pay for it.
    def forbidden(*args, **kwargs):
        raise AssertionError("first-order backward recomputed the forward")
    monkeypatch.setattr(lstm_bptt, "lstm_scan", forbidden)
    model = rnncourse.LSTM(3, 4, num_layers=2, bidirectional=True)
    model(torch.randn(5, 2, 3, requires_grad=True))[0].sum().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_batched_gradients_equal_one_by_one():
    tnn, ref = pair("LSTM", 3, 4, num_layers=2)
    x = leaf(5, 2, 3)
    out = ref(x)[0]
    vs = torch.randn(4, *out.shape, dtype=F64)
    batched, = torch.autograd.grad(out, x, vs, is_grads_batched=True, retain_graph=True)
    for v, b in zip(vs, batched):
        one, = torch.autograd.grad(out, x, v, retain_graph=True)
        assert (one - b).abs().max().item() < 1e-12
    assert gradcheck(with_params(ref), (x, *ref.parameters()), check_batched_grad=True)


def test_torch_func_vmap_and_grad_over_the_model():
    tnn, ref = pair("LSTM", 3, 4, bidirectional=True)
    xs = torch.randn(6, 5, 3, dtype=F64)  # 6 unbatched sequences (T, I)
    got = torch.func.vmap(lambda x: ref(x)[0])(xs)
    want = torch.stack([tnn(x)[0] for x in xs])
    assert (got - want).abs().max().item() < 1e-10
    g_ref = torch.func.grad(lambda x: ref(x)[0].sum())(xs[0])
    x0 = xs[0].clone().requires_grad_()
    g_tnn, = torch.autograd.grad(tnn(x0)[0].sum(), x0)
    assert (g_ref - g_tnn).abs().max().item() < 1e-10


@pytest.mark.parametrize("name", ["RNNCell", "LSTMCell", "GRUCell"])
def test_cells_batched_grad_and_gradgrad(name):
    # test_modules' test_grad / test_gradgrad for the cells (check_batched_grad: vmap).
    _, cell = pair(name, 3, 4)
    x = leaf(2, 3)
    state = (leaf(2, 4, seed=2), leaf(2, 4, seed=3)) if name == "LSTMCell" else (leaf(2, 4, seed=2),)
    call = (lambda x, h, c: cell(x, (h, c))) if name == "LSTMCell" else (lambda x, h: cell(x, h))
    assert gradcheck(call, (x, *state), check_batched_grad=True)
    assert gradgradcheck(call, (x, *state), check_batched_grad=True)
