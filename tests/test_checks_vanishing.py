"""The lesson-03 checks accept correct code however it is written and reject the
typical wrong variants with the right diagnosis."""
import sys
import warnings

import pytest
import torch

from rnncourse.checks.core import CheckFailed

from _reject import assert_rejected
from rnncourse.guard import handed_to_learner
from classroom.wrong import shared
from rnncourse.checks.vanishing import (
    autograd_jacobians, chain_norms, check_clip_grad_norm_, check_jacobian_norms,
)


# ---------------------------------------------------------------- jacobian_norms: correct

def norms_backward(states, W_hh):
    B, T1, H = states.shape
    P = torch.eye(H, dtype=states.dtype, device=states.device).expand(B, H, H)
    out = [torch.linalg.matrix_norm(P, ord=2)]
    for k in range(T1 - 1, 0, -1):
        P = P @ ((1 - states[:, k] ** 2)[:, :, None] * W_hh)  # new factor on the right
        out.append(torch.linalg.matrix_norm(P, ord=2))
    return torch.stack(out[::-1], dim=1)


def norms_row_vectors(states, W_hh):
    # the transpose of the whole product, built from J_k^T = W_hh^T diag(1 - h_k^2): same norms
    B, T1, H = states.shape
    norms = torch.ones(B, T1, dtype=states.dtype, device=states.device)
    for b in range(B):
        Q = torch.eye(H, dtype=states.dtype, device=states.device)
        for k in range(T1 - 1, 0, -1):
            Q = W_hh.T @ torch.diag(1 - states[b, k] ** 2) @ Q
            norms[b, k - 1] = torch.linalg.svdvals(Q)[0]
    return norms


def norms_autograd(states, W_hh):
    # autograd through a linear map that has the step Jacobian: also correct
    B, T1, H = states.shape
    norms = []
    for t in range(T1):
        def chain(v, t=t):
            for k in range(t + 1, T1):
                v = (1 - states[:, k] ** 2) * (v @ W_hh.T)
            return v
        J = torch.autograd.functional.jacobian(lambda v: chain(v).sum(0), torch.zeros_like(states[:, 0]))
        J = J.permute(1, 0, 2)  # (B, H_out, H_in)
        norms.append(torch.linalg.matrix_norm(J, ord=2))
    return torch.stack(norms, dim=1)


def norms_upcast(states, W_hh):
    return norms_backward(states.double(), W_hh.double())


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [norms_backward, norms_row_vectors, norms_autograd, norms_upcast])
def test_jacobian_norms_accepts_correct_code(fn, hidden):
    check_jacobian_norms(fn, hidden=hidden)


def test_reference_is_the_explicit_chain():
    gen = torch.Generator().manual_seed(3)
    a = {"x": torch.randn(4, 6, 3, generator=gen, dtype=torch.float64),
         "h0": torch.randn(4, 5, generator=gen, dtype=torch.float64).tanh(),
         "W_ih": torch.randn(5, 3, generator=gen, dtype=torch.float64),
         "W_hh": torch.randn(5, 5, generator=gen, dtype=torch.float64) * 0.5,
         "b": torch.randn(5, generator=gen, dtype=torch.float64)}
    from rnncourse.checks.vanishing import _states
    jac = autograd_jacobians(a)  # (B, T+1, H, H)
    assert torch.allclose(jac[:, -1], torch.eye(5, dtype=torch.float64).expand(4, 5, 5))
    norms = torch.linalg.matrix_norm(jac, ord=2)
    assert torch.allclose(chain_norms(_states(a), a["W_hh"]), norms, atol=1e-12, rtol=1e-10)


def _chain(**kw):
    # a learner who wrote this mistake; the check's own helper computes it, unblocked
    return lambda states, W_hh: handed_to_learner(chain_norms)(states, W_hh, **kw)


WRONG_CHAINS = {
    **shared("jacobian_norms"),  # W_hh_transposed
    "no tanh'": (_chain(no_diag=True), "diag(1 - h_k^2) factor is left out"),
    "wrong order": (_chain(wrong_order=True), "wrong order"),
    "off by one": (_chain(previous_h=True), "off by one"),
    "tanh twice": (_chain(tanh_twice=True), "1 - tanh(h_k)^2"),
    "diag on the right": (_chain(diag_right=True), "diagonal multiplies on the right"),
    "Frobenius": (_chain(frobenius=True), "Frobenius norm"),
    "forward products": (_chain(forward=True), "dh_t/dh_0"),
    "without t = T": (lambda s, W: norms_backward(s, W)[:, :-1], "include t = T"),
    "Jacobians": (lambda s, W: torch.ones(s.shape[0], s.shape[1], W.shape[0], W.shape[0], dtype=s.dtype, device=s.device),
                  "return their norms"),
    "float32": (lambda s, W: norms_backward(s, W).float(), "precision was lost"),
    "NaN": (lambda s, W: norms_backward(s, W) * float("nan"), "contains NaN"),
    "raises": (lambda s, W: torch.linalg.norm(torch.zeros(2, 3, 3), 2), "raised RuntimeError"),
    "slightly off": (lambda s, W: norms_backward(s, 1.001 * W), "largest error"),
}


@pytest.mark.parametrize("name", list(WRONG_CHAINS))
def test_jacobian_norms_rejects_wrong_code(name):
    fn, diagnosis = WRONG_CHAINS[name]
    assert_rejected(check_jacobian_norms, fn, diagnosis, "jacobian_norms", first_case=True)


@pytest.mark.parametrize("name", ["W_hh_transposed", "wrong order", "off by one", "Frobenius"])
def test_visible_tests_name_the_mistake_too(name):
    fn, diagnosis = WRONG_CHAINS[name]
    with pytest.raises(CheckFailed, match="float32 on cpu") as info:
        check_jacobian_norms(fn)
    assert diagnosis in str(info.value)


# ---------------------------------------------------------------- clip_grad_norm_: correct

def clip_looped(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    if total > max_norm:
        for p in params:
            p.grad.mul_(max_norm / total)
    return total


def clip_like_torch(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    coef = torch.clamp(max_norm / (total + 1e-6), max=1.0)
    for g in grads:
        g.mul_(coef)  # always multiplies, by 1 when below max_norm
    return total


def clip_replaces_grad(parameters, max_norm):
    # assigns new tensors to p.grad rather than scaling in place: the optimizer sees the same
    params = list(parameters)
    total = sum(float(p.grad.double().pow(2).sum()) for p in params if p.grad is not None) ** 0.5
    if total > max_norm:
        for p in params:
            if p.grad is not None:
                p.grad = p.grad * (max_norm / total)
    return total


def clip_flat(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    total = flat.norm()
    scale = min(1.0, max_norm / (float(total) + 1e-6))
    for p in params:
        p.grad *= scale
    return total.item()


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [clip_looped, clip_like_torch, clip_replaces_grad, clip_flat])
def test_clip_grad_norm_accepts_correct_code(fn, hidden):
    check_clip_grad_norm_(fn, hidden=hidden)


def test_the_three_four_five_fact():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    total = torch.nn.utils.clip_grad_norm_([p], 1.0)
    assert float(total) == 5.0
    assert torch.allclose(p.grad, torch.tensor([0.6, 0.8]))


def test_right_answers_write_nothing_to_stderr(capfd):
    def noisy(parameters, max_norm):
        warnings.warn("a harmless warning from the learner's code")
        print("debugging output on stderr", file=sys.stderr)
        return clip_looped(parameters, max_norm)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_clip_grad_norm_(noisy, hidden=True)
        check_jacobian_norms(norms_backward, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- clip_grad_norm_: wrong

def _post_clip(parameters, max_norm):
    clip_looped(parameters, max_norm)
    return min(float(max_norm), float(torch.sqrt(sum((p.grad ** 2).sum() for p in parameters))))


def _per_param(parameters, max_norm):
    total = 0.0
    for p in parameters:
        if p.grad is None:
            continue
        n = p.grad.norm()
        total = n
        if n > max_norm:
            p.grad.mul_(max_norm / n)
    return total


def _scale_up(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.mul_(max_norm / total)
    return total


def _crash_on_none(parameters, max_norm):
    params = list(parameters)
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    for p in params:
        p.grad.mul_(min(1.0, max_norm / total))
    return total


def _not_in_place(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    clipped = [p.grad * min(1.0, float(max_norm / total)) for p in params]  # never written back
    return total


def _generator_twice(parameters, max_norm):
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in parameters if p.grad is not None))
    if total > max_norm:
        for p in parameters:  # empty the second time when parameters is a generator
            if p.grad is not None:
                p.grad.mul_(max_norm / total)
    return total


def _squared(parameters, max_norm):
    return clip_looped(parameters, max_norm) ** 2


def _sum_of_norms(parameters, max_norm):
    params = list(parameters)
    s = sum(p.grad.norm() for p in params if p.grad is not None)
    clip_looped(params, max_norm)
    return s


def _returns_none(parameters, max_norm):
    clip_looped(parameters, max_norm)


def _zero_grad_for_none(parameters, max_norm):
    params = list(parameters)
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    return clip_looped(params, max_norm)


def _uses_torch_helpers(parameters, max_norm):
    params = list(parameters)
    total = torch.nn.utils.get_total_norm([p.grad for p in params if p.grad is not None])
    torch.nn.utils.clip_grads_with_norm_(params, max_norm, total)
    return total


WRONG_CLIPS = {
    **shared("clip_grad_norm_"),  # post_clip_norm, per_parameter, calls_torch
    "per-parameter norms": (_per_param, "clipped by its own norm"),
    "scales up below max_norm": (_scale_up, "even though their norm is below it"),
    "crashes on a parameter without grad": (_crash_on_none, "p.grad is None"),
    "not in place": (_not_in_place, "the gradients were not changed"),
    "generator iterated twice": (_generator_twice, "a generator (model.parameters()) is empty the second time"),
    "squared norm": (_squared, "square root is missing"),
    "sum of norms": (_sum_of_norms, "you add the parameters' norms"),
    "returns None": (_returns_none, "returned None"),
    "zero grad for a parameter without one": (_zero_grad_for_none, "had no gradient and now has one"),
    "calls torch's helpers": (_uses_torch_helpers, "torch.nn.utils.get_total_norm was called"),
    "raises": (lambda p, m: 1 / 0, "raised ZeroDivisionError"),
}


@pytest.mark.parametrize("name", list(WRONG_CLIPS))
@pytest.mark.parametrize("hidden", [False, True])
def test_clip_grad_norm_rejects_wrong_code(name, hidden):
    fn, diagnosis = WRONG_CLIPS[name]
    assert_rejected(check_clip_grad_norm_, fn, diagnosis, "clip_grad_norm_", hidden=hidden)


def test_post_clip_caught_on_the_three_four_five_case():
    with pytest.raises(CheckFailed, match=r"case 1 of \d+ .*grads=\[3, 4\].*norm after clipping"):
        check_clip_grad_norm_(_post_clip)


def test_torch_clip_imported_before_the_check_is_still_blocked():
    from torch.nn.utils import clip_grad_norm_ as imported
    with pytest.raises(CheckFailed, match="clip_grad_norm_"):
        check_clip_grad_norm_(lambda p, m: imported(p, m), hidden=True)
    # and torch's function works again afterwards
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    assert float(imported([p], 1.0)) == 5.0


def test_checks_are_deterministic():
    msgs = []
    for _ in range(2):
        with pytest.raises(CheckFailed) as info:
            check_jacobian_norms(WRONG_CHAINS["off by one"][0], hidden=True)
        msgs.append(str(info.value))
    assert msgs[0] == msgs[1]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_hidden_checks_run_a_gpu_case(capsys):
    check_jacobian_norms(norms_backward, hidden=True)
    check_clip_grad_norm_(clip_looped, hidden=True)
    assert capsys.readouterr().out.count("float64/cuda") == 2
