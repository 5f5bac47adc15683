"""rnncourse.scan: the three forms of h_t = a_t h_{t-1} + b_t agree (float64), are
differentiable (gradcheck), take ceil(log2 T) rounds, and refuse bad input clearly."""
import pytest
import torch

from rnncourse.guard import REFERENCE_MODELS, BlockedError, blocked
from rnncourse.scan import (
    combine, reaches, round_states, scan_log, scan_parallel, scan_rounds, scan_sequential,
)
from rnncourse.validation import ShapeError

D = torch.float64


def draw(B, T, H, seed=0, dtype=D, positive=True):
    gen = torch.Generator().manual_seed(seed)
    a = torch.rand(B, T, H, generator=gen, dtype=D) * 0.9 + 0.05
    if not positive:
        a = a * torch.where(torch.rand(B, T, H, generator=gen, dtype=D) < 0.3, -1.0, 1.0)
    b = torch.randn(B, T, H, generator=gen, dtype=D)
    h0 = torch.randn(B, H, generator=gen, dtype=D)
    return a.to(dtype), b.to(dtype), h0.to(dtype)


def by_hand(a, b, h0):
    h, out = h0, []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("T", [1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 100, 257])
def test_sequential_parallel_and_log_agree_in_float64(T):
    a, b, h0 = draw(3, T, 4, seed=T)
    want = by_hand(a, b, h0)
    torch.testing.assert_close(scan_sequential(a, b, h0), want, atol=1e-13, rtol=0)
    torch.testing.assert_close(scan_parallel(a, b, h0), want, atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(scan_log(a.log(), b, h0), want, atol=1e-11, rtol=1e-10)


def test_negative_a_in_the_plain_forms_and_zero_h0_by_default():
    a, b, h0 = draw(2, 13, 3, positive=False)
    torch.testing.assert_close(scan_parallel(a, b, h0), by_hand(a, b, h0), atol=1e-12, rtol=1e-12)
    torch.testing.assert_close(scan_parallel(a, b), by_hand(a, b, torch.zeros_like(h0)))
    torch.testing.assert_close(scan_log(a.abs().log(), b), by_hand(a.abs(), b, torch.zeros_like(h0)))


def test_trailing_feature_shapes_and_float32():
    a, b, h0 = draw(2, 11, 6, dtype=torch.float32)
    a, b, h0 = a.view(2, 11, 2, 3), b.view(2, 11, 2, 3), h0.view(2, 2, 3)
    want = by_hand(a.double(), b.double(), h0.double())
    for got in (scan_parallel(a, b, h0), scan_sequential(a, b, h0), scan_log(a.log(), b, h0)):
        assert got.dtype == torch.float32 and got.shape == (2, 11, 2, 3)
        torch.testing.assert_close(got.double(), want, atol=1e-5, rtol=1e-4)


def test_log_space_stays_finite_where_the_cumprod_shortcut_fails():
    # a* = prod a_k underflows float64 after ~1000 steps of a ~ 0.5: b / a* is inf
    T = 3000
    a = torch.full((1, T, 2), 0.5, dtype=D)
    b = torch.ones(1, T, 2, dtype=D)
    shortcut = torch.cumprod(a, 1) * torch.cumsum(b / torch.cumprod(a, 1), 1)
    assert not torch.isfinite(shortcut).all()
    got = scan_log(a.log(), b)
    torch.testing.assert_close(got, scan_sequential(a, b))
    assert torch.allclose(got[0, -1], torch.tensor(2.0, dtype=D))  # the fixed point 1 / (1 - 0.5)


@pytest.mark.parametrize("fn", ["sequential", "parallel", "log"])
def test_gradcheck(fn):
    a, b, h0 = draw(2, 6, 3, seed=5)
    a, b, h0 = (t.clone().requires_grad_() for t in (a, b, h0))
    f = {"sequential": scan_sequential, "parallel": scan_parallel,
         "log": lambda a, b, h: scan_log(a.log(), b, h)}[fn]
    assert torch.autograd.gradcheck(f, (a, b, h0))
    if fn != "log":  # its second derivative, through complex intermediates, fails gradgradcheck on torch 2.13
        assert torch.autograd.gradgradcheck(f, (a, b, h0))


def test_rounds_are_ceil_log2_T():
    assert [scan_rounds(T) for T in (1, 2, 3, 4, 5, 8, 9, 1024, 1025)] == [0, 1, 2, 2, 3, 3, 4, 10, 11]
    for T in (1, 2, 5, 8, 13):
        a, b, h0 = draw(1, T, 1)
        states = round_states(a, b, h0)
        assert len(states) == scan_rounds(T) + 1 == len(reaches(T)) + 1
        torch.testing.assert_close(states[-1][1], scan_sequential(a, b, h0))
    assert reaches(5) == [[(0, 1), (1, 2), (2, 3), (3, 4)], [(0, 2), (1, 3), (2, 4)], [(0, 4)]]


def test_combine_is_associative_not_commutative():
    p, q, r = [tuple(torch.randn(4, dtype=D, generator=torch.Generator().manual_seed(s)) for _ in range(2))
               for s in (1, 2, 3)]
    left, right = combine(combine(p, q), r), combine(p, combine(q, r))
    for x, y in zip(left, right):
        torch.testing.assert_close(x, y)
    assert not torch.allclose(combine(p, q)[1], combine(q, p)[1])


def test_inputs_are_not_modified_and_meta_device_runs():
    a, b, h0 = draw(2, 9, 3)
    copies = [t.clone() for t in (a, b, h0)]
    scan_parallel(a, b, h0), scan_log(a.log(), b, h0), scan_sequential(a, b, h0)
    assert all(torch.equal(x, y) for x, y in zip(copies, (a, b, h0)))
    m = [t.to("meta") for t in (a, b, h0)]
    assert scan_parallel(*m).device.type == "meta" and scan_sequential(*m).device.type == "meta"


def test_bad_input_names_the_argument():
    a, b, h0 = draw(2, 5, 3)
    with pytest.raises(ShapeError, match=r"a and b must have the same shape"):
        scan_parallel(a, b[:, :4], h0)
    with pytest.raises(ShapeError, match=r"h0 must have shape \(B, \*\) = \(2, 3\)"):
        scan_parallel(a, b, h0[:, :2])
    with pytest.raises(ShapeError, match=r"at least 2-D"):
        scan_sequential(a[0, 0], b[0, 0])
    with pytest.raises(TypeError, match="floating-point"):
        scan_parallel(a.long(), b)
    with pytest.raises(TypeError, match="log_a must be a torch.Tensor"):
        scan_log([1.0], b)


def test_blocked_while_a_learner_is_checked():
    a, b, h0 = draw(1, 3, 2)
    for fn in (scan_sequential, scan_parallel):
        with blocked("parallel_scan", (REFERENCE_MODELS,)), pytest.raises(BlockedError, match="scan"):
            fn(a, b, h0)
