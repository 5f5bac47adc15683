"""The lesson-02 checks accept correct code however it is written and reject the
typical wrong variants with the right diagnosis."""
import sys
import warnings

import pytest
import torch

from rnncourse.checks.bptt import (
    GRADS, _BACKWARD_VARIANTS, _wrong_backward, check_batchify, check_rnn_backward, check_tbptt_batches,
    reference_backward,
)
from rnncourse.checks.core import CheckFailed

from _reject import assert_rejected
from classroom.wrong import shared


# ---------------------------------------------------------------- rnn_backward, correct

def _states(x, h0, W_ih, W_hh, b_ih, b_hh):
    hs = [h0]
    for t in range(x.shape[1]):
        hs.append(torch.tanh(x[:, t] @ W_ih.T + b_ih + hs[-1] @ W_hh.T + b_hh))
    return hs  # h_0 ... h_T, each (B, H)


def backward_looped(x, h0, W_ih, W_hh, b_ih, b_hh, dh, **mistakes):
    """A hand-written backward; keyword flags switch on one typical mistake each."""
    hs = _states(x, h0, W_ih, W_hh, b_ih, b_hh)
    T = x.shape[1]
    dx = torch.zeros_like(x)
    dW_ih, dW_hh, db = torch.zeros_like(W_ih), torch.zeros_like(W_hh), torch.zeros_like(b_ih)
    carry = torch.zeros_like(h0)
    for t in reversed(range(T)):
        delta = dh[:, t] + carry
        dz = delta if mistakes.get("no_tanh_grad") else delta * (1 - hs[t + 1] ** 2)
        dx[:, t] = dz @ W_ih
        if not mistakes.get("last_only") or t == T - 1:
            dW_ih = dW_ih + dz.T @ x[:, t]
            h_in = hs[t + 1] if mistakes.get("pair_h_t") else hs[t]
            dW_hh = dW_hh + (h_in.T @ dz if mistakes.get("transposed") else dz.T @ h_in)
            db = db + dz.sum(0)
        if mistakes.get("no_carry"):
            carry = torch.zeros_like(h0)
        else:
            carry = dz @ (W_hh.T if mistakes.get("carry_T") else W_hh)
    db_ih = db
    db_hh = torch.zeros_like(db) if mistakes.get("no_db_hh") else db
    return dx, carry, dW_ih, dW_hh, db_ih, db_hh


def backward_vectorised(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    # states first, then one reverse sweep, then every weight gradient in one einsum
    hs = torch.stack(_states(x, h0, W_ih, W_hh, b_ih, b_hh), dim=1)  # (B, T+1, H)
    dz = torch.empty_like(dh)
    carry = torch.zeros_like(h0)
    for t in range(x.shape[1] - 1, -1, -1):
        dz[:, t] = (dh[:, t] + carry) * (1 - hs[:, t + 1] ** 2)
        carry = dz[:, t] @ W_hh
    return (dz @ W_ih, carry, torch.einsum("bth,bti->hi", dz, x),
            torch.einsum("bth,btk->hk", dz, hs[:, :-1]), dz.sum((0, 1)), dz.sum((0, 1)))


def backward_float64_inside(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    # computes in float64, returns the inputs' dtype, as the lesson asks
    args = [a.double() for a in (x, h0, W_ih, W_hh, b_ih, b_hh, dh)]
    return tuple(g.to(x.dtype) for g in backward_looped(*args))


def backward_list(*args):
    return list(backward_vectorised(*args))


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [backward_looped, backward_vectorised, backward_float64_inside,
                                backward_list])
def test_rnn_backward_accepts_correct_code(fn, hidden):
    check_rnn_backward(fn, hidden=hidden)


def test_hand_written_variant_without_mistakes_is_autograd():
    gen = torch.Generator().manual_seed(3)
    B, T, I, H = 2, 5, 3, 4
    r = lambda *s: torch.randn(*s, generator=gen, dtype=torch.float64)  # noqa: E731
    a = {"x": r(B, T, I), "h0": r(B, H).tanh(), "W_ih": r(H, I), "W_hh": r(H, H) / 2,
         "b_ih": r(H), "b_hh": r(H), "dh": r(B, T, H)}
    mine = _wrong_backward(a)
    for name, ref in zip(GRADS, reference_backward(a)):
        torch.testing.assert_close(mine[name], ref)


def test_right_answer_writes_nothing_to_stderr(capfd):
    def noisy(*args):
        warnings.warn("a harmless warning")
        print("debugging output", file=sys.stderr)
        return backward_vectorised(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_rnn_backward(noisy, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- rnn_backward, wrong

def _flag(**kw):
    return lambda *a: backward_looped(*a, **kw)


def _uses_autograd_grad(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    params = [t.clone().requires_grad_() for t in (x, h0, W_ih, W_hh, b_ih, b_hh)]
    with torch.enable_grad():
        out = torch.stack(_states(*params)[1:], dim=1)
        return torch.autograd.grad(out, params, dh)


def _uses_func_vjp(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    f = lambda *p: torch.stack(_states(*p)[1:], dim=1)  # noqa: E731
    _, vjp = torch.func.vjp(f, x, h0, W_ih, W_hh, b_ih, b_hh)
    return vjp(dh)


def _uses_nn_rnn(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    rnn = torch.nn.RNN(W_ih.shape[1], W_ih.shape[0], batch_first=True, dtype=x.dtype)
    out, _ = rnn(x, h0[None])
    return backward_vectorised(x, h0, W_ih, W_hh, b_ih, b_hh, dh)


WRONG_BACKWARDS = {
    **shared("rnn_backward"),  # uses_autograd, no_tanh_derivative
    "not summed over time": (_flag(last_only=True), "dW_ih is wrong. It matches what you get if the weight gradients keep only the last step"),
    "transposed dW_hh": (_flag(transposed=True), "dW_hh is wrong. It matches what you get if dW_hh is transposed"),
    "dh_prev not propagated": (_flag(no_carry=True), "the gradient is not passed back to h_{t-1}"),
    "carry through W_hh.T": (_flag(carry_T=True), "passed back through W_hh.T"),
    "off by one h_t": (_flag(pair_h_t=True), "dW_hh pairs dz_t with h_t instead of the previous state"),
    "db_hh missing": (_flag(no_db_hh=True), "db_hh is all zeros"),
    "db over time only": (lambda *a: (*backward_vectorised(*a)[:4], torch.zeros(a[0].shape[0], a[3].shape[0],
                                      dtype=a[0].dtype, device=a[0].device), backward_vectorised(*a)[5]), "sum over the batch too"),
    "dW_ih transposed shape": (lambda *a: (*backward_vectorised(*a)[:2], backward_vectorised(*a)[2].T,
                                           *backward_vectorised(*a)[3:]), "transpose"),
    "autograd.grad": (_uses_autograd_grad, "autograd"),
    "torch.func.vjp": (_uses_func_vjp, "autograd (torch.func"),
    "nn.RNN": (_uses_nn_rnn, "autograd"),  # its parameters require grad: refused before the kernel
    "five results": (lambda *a: backward_vectorised(*a)[:5], "expected a tuple of six gradients"),
    "dict": (lambda *a: dict(zip(GRADS, backward_vectorised(*a))), "got a dict"),
    "float32": (lambda *a: tuple(g.float() for g in backward_vectorised(*a)), "precision was lost"),
    "stub": (lambda *a: (_ for _ in ()).throw(NotImplementedError()), "NotImplementedError"),
}


@pytest.mark.parametrize("name", list(WRONG_BACKWARDS))
def test_rnn_backward_rejects_wrong_code(name):
    fn, diagnosis = WRONG_BACKWARDS[name]
    assert_rejected(check_rnn_backward, fn, diagnosis, "rnn_backward", first_case=True)


def test_visible_test_catches_autograd_too():
    with pytest.raises(CheckFailed, match="derive the gradients by hand"):
        check_rnn_backward(WRONG_BACKWARDS["uses_autograd"][0])


def test_autograd_is_allowed_again_after_the_check():
    with pytest.raises(CheckFailed):
        check_rnn_backward(WRONG_BACKWARDS["uses_autograd"][0])
    x = torch.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    assert x.grad.tolist() == [3.0, 3.0]


# ---------------------------------------------------------------- batching

def batchify_view(tokens, batch_size):
    L = tokens.numel() // batch_size
    return tokens[: batch_size * L].view(batch_size, L)


def batchify_stack(tokens, batch_size):
    L = len(tokens) // batch_size
    return torch.stack([tokens[b * L:(b + 1) * L] for b in range(batch_size)])


def chunks_loop(streams, seq_len):
    out, L = [], streams.shape[1]
    for i in range(0, L - 1, seq_len):
        n = min(seq_len, L - 1 - i)
        out.append((streams[:, i:i + n], streams[:, i + 1:i + 1 + n]))
    return out


def chunks_split(streams, seq_len):
    # split inputs and targets separately, then pair them up in the list the lesson asks for
    # (a bare zip is a one-pass iterator: tests/test_checks_walkaround.py rejects it)
    inputs = streams[:, :-1].split(seq_len, dim=1)
    targets = streams[:, 1:].split(seq_len, dim=1)
    return list(zip(inputs, targets))


@pytest.mark.parametrize("hidden", [False, True])
def test_batching_accepts_correct_code(hidden):
    for fn in (batchify_view, batchify_stack):
        check_batchify(fn, hidden=hidden)
    for fn in (chunks_loop, chunks_split):
        check_tbptt_batches(fn, hidden=hidden)


def _padded(tokens, B):
    L = -(-tokens.numel() // B)
    return torch.nn.functional.pad(tokens, (0, B * L - tokens.numel())).view(B, L)


WRONG_BATCHIFY = {
    **shared("batchify"),  # interleaved_streams
    "time-first": (lambda t, B: batchify_view(t, B).T, "time-first"),
    "tail kept": (_padded, "one column too many"),
    "tail dropped at the front": (lambda t, B: t[t.numel() - B * (t.numel() // B):].view(B, -1), "from the start"),
    "float": (lambda t, B: batchify_view(t, B).float(), "keep the tokens' dtype"),
    "shuffled": (lambda t, B: batchify_view(t, B).flip(1), "entries are not where they should be"),
    "list": (lambda t, B: batchify_view(t, B).tolist(), "should be a torch.Tensor"),
}


@pytest.mark.parametrize("name", list(WRONG_BATCHIFY))
def test_batchify_rejects_wrong_code(name):
    fn, diagnosis = WRONG_BATCHIFY[name]
    assert_rejected(check_batchify, fn, diagnosis)


def _chunks(streams, S, step=None, shift=1, keep_tail=True, stop=1, swap=False, time_first=False, pad=False):
    out, L = [], streams.shape[1]
    for i in range(0, L - stop, step or S):
        n = min(S, L - 1 - i)
        if n < S and not keep_tail:
            break
        x, y = streams[:, i:i + n], streams[:, i + shift:i + shift + n]
        if pad:
            x, y = (torch.nn.functional.pad(t, (0, S - t.shape[1])) for t in (x, y))
        if time_first:
            x, y = x.T, y.T
        out.append((y, x) if swap else (x, y))
    return out


WRONG_CHUNKS = {
    **shared("tbptt_batches"),  # unshifted_targets
    "shifted the wrong way": (lambda s, S: _chunks(s, S, swap=True), "shifted the wrong way"),
    "ragged tail dropped": (lambda s, S: _chunks(s, S, keep_tail=False), "the last, shorter chunk is dropped"),
    "skips a token": (lambda s, S: _chunks(s, S, step=S + 1), "seq_len + 1"),
    "overlap": (lambda s, S: _chunks(s, S, step=S - 1), "overlap"),
    "empty last chunk": (lambda s, S: _chunks(s, S, stop=0), "adding an empty chunk"),
    "padded tail": (lambda s, S: _chunks(s, S, pad=True), "don't pad it"),
    "time-first": (lambda s, S: _chunks(s, S, time_first=True), "time-first"),
    "not pairs": (lambda s, S: [x for x, _ in _chunks(s, S)], "chunk 0 to be a pair"),
    "cut along the batch": (lambda s, S: [(s[i:i + S], s[i + 1:i + 1 + S]) for i in range(0, s.shape[0] - 1, S)],
                            "chunk"),
}


@pytest.mark.parametrize("name", list(WRONG_CHUNKS))
def test_tbptt_batches_rejects_wrong_code(name):
    fn, diagnosis = WRONG_CHUNKS[name]
    assert_rejected(check_tbptt_batches, fn, diagnosis)


def test_visible_batching_cases_have_a_ragged_and_an_exact_split():
    # the learner hears about the tail rule before grading, both ways round
    with pytest.raises(CheckFailed, match="shorter chunk is dropped"):
        check_tbptt_batches(WRONG_CHUNKS["ragged tail dropped"][0])
    with pytest.raises(CheckFailed, match="empty chunk"):
        check_tbptt_batches(WRONG_CHUNKS["empty last chunk"][0])
    with pytest.raises(CheckFailed, match="one column too many"):
        check_batchify(_padded)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_hidden_checks_run_a_gpu_case(capsys):
    check_rnn_backward(backward_vectorised, hidden=True)
    check_batchify(batchify_view, hidden=True)
    check_tbptt_batches(chunks_loop, hidden=True)
    assert capsys.readouterr().out.count("/cuda") == 3


@pytest.mark.parametrize("phrase", list(_BACKWARD_VARIANTS))
def test_every_named_backward_mistake_is_recognised(phrase):
    # A learner who makes exactly this mistake hears about exactly this mistake:
    # no variant listed before it matches first.
    # (computed before the check: the variants' forward is rnncourse's, blocked inside it)
    from rnncourse.checks.bptt import BACKWARD_PLAN
    from rnncourse.checks.core import build_cases, on_cpu64
    answers = iter([_wrong_backward(on_cpu64(c), **_BACKWARD_VARIANTS[phrase])
                    for c in build_cases(True, BACKWARD_PLAN)])

    def learner(x, *args):
        grads = next(answers)
        return tuple(grads[name].to(x) for name in GRADS)
    with pytest.raises(CheckFailed) as info:
        check_rnn_backward(learner, hidden=True)
    assert f"It matches what you get if {phrase}." in str(info.value)
