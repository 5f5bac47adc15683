"""The hand-written LSTM BPTT (rnncourse/lstm_bptt.py) against autograd through
the plain loop it replaces (``lstm_scan``): outputs, final states and every
gradient, forward and reverse, with and without bias, across the backward's
block boundaries, and with float64 gradcheck."""
from __future__ import annotations

import pytest
import torch

from rnncourse import lstm_bptt
from rnncourse.lstm_bptt import LSTMScan, lstm_scan

F64 = torch.float64


def inputs(T=7, B=3, I=4, H=5, bias=True, dtype=F64, seed=0):
    g = torch.Generator().manual_seed(seed)
    make = lambda *s: (torch.randn(*s, dtype=dtype, generator=g) * 0.7).requires_grad_()
    return [make(T, B, I), make(4 * H, I), make(4 * H) if bias else None, make(B, H), make(B, H),
            make(4 * H, H)]


def run(fn, args, reverse, weights):
    """Outputs of fn and the gradients of a loss mixing all three outputs."""
    out, h_n, c_n = fn(*args, reverse)
    loss = (out * weights).sum() + (h_n ** 2).sum() + (c_n.sin() * 3).sum()
    leaves = [a for a in args if a is not None]
    return [out, h_n, c_n], torch.autograd.grad(loss, leaves)


def assert_close(got, want, tol):
    for g, w in zip(got, want):
        assert g.shape == w.shape
        assert g.numel() == 0 or (g - w).abs().max().item() <= tol


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("block", [1 << 18, 1, 2 * 3 * 20])  # one block, every step, 2 steps
def test_hand_written_backward_equals_autograd_of_the_loop(reverse, bias, block, monkeypatch):
    monkeypatch.setattr(lstm_bptt, "BLOCK_ELEMENTS", block)
    args = inputs(bias=bias)
    weights = torch.randn(7, 3, 5, dtype=F64)
    got, got_grads = run(LSTMScan.apply, args, reverse, weights)
    want, want_grads = run(lstm_scan, args, reverse, weights)
    assert_close(got, want, 1e-12)
    assert_close(got_grads, want_grads, 1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_float32_close_to_the_loop(reverse):
    # tanh is computed as 2 sigmoid(2a) - 1: check that float32 loses nothing visible.
    args = inputs(T=20, B=4, I=6, H=8, dtype=torch.float32)
    weights = torch.randn(20, 4, 8)
    got, got_grads = run(LSTMScan.apply, args, reverse, weights)
    want, want_grads = run(lstm_scan, args, reverse, weights)
    assert_close(got, want, 2e-6)
    assert_close(got_grads, want_grads, 2e-5)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck(reverse, bias):
    args = inputs(T=4, B=2, I=3, H=2, bias=bias)
    if bias:
        f = lambda x, w, b, h, c, u: LSTMScan.apply(x, w, b, h, c, u, reverse)
        assert torch.autograd.gradcheck(f, tuple(args))
    else:
        f = lambda x, w, h, c, u: LSTMScan.apply(x, w, None, h, c, u, reverse)
        assert torch.autograd.gradcheck(f, tuple(a for a in args if a is not None))


def test_only_some_inputs_need_gradients():
    x, w_ih, b, h0, c0, w_hh = inputs()
    x, h0, c0 = x.detach(), h0.detach(), c0.detach()
    out, h_n, c_n = LSTMScan.apply(x, w_ih, b, h0, c0, w_hh, False)
    g = torch.autograd.grad(out.sum() + c_n.sum(), [w_hh, b])
    out2, _, c2 = lstm_scan(x, w_ih, b, h0, c0, w_hh, False)
    assert_close(g, torch.autograd.grad(out2.sum() + c2.sum(), [w_hh, b]), 1e-12)
    with torch.no_grad():  # and with no gradient at all, the same outputs
        assert_close(LSTMScan.apply(x, w_ih, b, h0, c0, w_hh, True),
                     lstm_scan(x, w_ih, b, h0, c0, w_hh, True), 1e-12)


def test_second_backward_with_retained_graph_is_identical():
    # The backward must not consume what the forward saved.
    args = inputs()
    out, h_n, c_n = LSTMScan.apply(*args, False)
    loss = out.sum() + c_n.sum()
    first = torch.autograd.grad(loss, [a for a in args if a is not None], retain_graph=True)
    second = torch.autograd.grad(loss, [a for a in args if a is not None])
    assert_close(first, second, 0)


def test_single_step_and_empty_batch():
    for T, B in [(1, 3), (4, 0)]:
        args = inputs(T=T, B=B)
        weights = torch.randn(T, B, 5, dtype=F64)
        got, got_grads = run(LSTMScan.apply, args, False, weights)
        want, want_grads = run(lstm_scan, args, False, weights)
        assert_close(got, want, 1e-12)
        assert_close(got_grads, want_grads, 1e-12)
