"""Issue class 2, device mistakes fail on a grader without a GPU: every exercise
with tensors has a meta-device run (count_parameters has none: no tensors), which
rejects a tensor made on the CPU (a buffer, an identity, an accumulator) or a result
moved there, with a message naming the problem, while right code that reads values
(.item(), a comparison in an if) still passes."""
import pytest
import torch

from _reject import assert_rejected
from _right import CHECKS, RIGHT

R = RIGHT
NAMED = "a tensor was created on the CPU while the inputs are on 'meta'"


def one_hot(indices, num_classes):
    return (indices.unsqueeze(-1) == torch.arange(num_classes)).float()  # arange on the CPU


def embed(indices, weight):
    return torch.eye(weight.shape[0], dtype=weight.dtype)[indices] @ weight  # identity on the CPU


def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    z = torch.zeros(x_t.shape[0], W_hh.shape[0], dtype=x_t.dtype)  # an accumulator on the CPU
    z = z + x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
    return torch.tanh(z)


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    outputs = torch.zeros(x.shape[0], x.shape[1], h0.shape[1], dtype=x.dtype)  # a CPU buffer
    h = h0
    for t in range(x.shape[1]):
        h = R["rnn_step"](x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        outputs[:, t] = h
    return outputs, h


def next_token_probs(h, W_hy, b_y):
    return torch.softmax(h @ W_hy.T + b_y * torch.ones(W_hy.shape[0], dtype=h.dtype), dim=-1)


def rnn_backward(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    grads = R["rnn_backward"](x, h0, W_ih, W_hh, b_ih, b_hh, dh)
    return (*grads[:4], grads[4] + torch.zeros(W_hh.shape[0], dtype=x.dtype), grads[5])


def batchify(tokens, batch_size):
    L = tokens.shape[0] // batch_size
    out = torch.empty(batch_size, L, dtype=tokens.dtype)  # rows filled into a CPU tensor
    for b in range(batch_size):
        out[b] = tokens[b * L:(b + 1) * L]
    return out


def tbptt_batches(streams, seq_len):
    return R["tbptt_batches"](streams.cpu(), seq_len)  # moved to the CPU "to be safe"


def jacobian_norms(states, W_hh):
    B, T1, H = states.shape
    P = torch.eye(H, dtype=states.dtype).expand(B, H, H)  # identity on the CPU
    norms = [torch.linalg.matrix_norm(P, ord=2)]
    for k in range(T1 - 1, 0, -1):
        P = P @ ((1 - states[:, k] ** 2)[:, :, None] * W_hh)
        norms.append(torch.linalg.matrix_norm(P, ord=2))
    return torch.stack(norms[::-1], dim=1)


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.zeros(1, dtype=grads[0].dtype)  # an accumulator on the CPU, before any value read
    for g in grads:
        total += g.pow(2).sum()
    total = total.sqrt()
    if total > max_norm:
        for g in grads:
            g.mul_(max_norm / (total + 1e-6))
    return total


def lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    gates = torch.empty(x_t.shape[0], W_ih.shape[0], dtype=x_t.dtype)  # a CPU buffer
    gates[:] = x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh
    i, f, g, o = gates.chunk(4, dim=1)
    c_t = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_t), c_t


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    out, (h, c) = R["lstm_forward"](x, h0, c0, W_ih, W_hh, b_ih, b_hh)
    return out.cpu(), (h, c)


def peephole_lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    peep = torch.stack([w_ci, w_cf, w_co]).cpu()  # weights copied to the CPU
    return R["peephole_lstm_step"](x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, *peep)


def gru_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    one = torch.ones(h_prev.shape, dtype=h_prev.dtype)  # a CPU tensor of ones
    return (one - z) * torch.tanh(x_n + r * h_n) + z * h_prev


WRONG = {fn.__name__: fn for fn in (
    one_hot, embed, rnn_step, rnn_forward, next_token_probs, rnn_backward, batchify, tbptt_batches,
    jacobian_norms, clip_grad_norm_, lstm_step, lstm_forward, peephole_lstm_step, gru_step)}


@pytest.mark.parametrize("exercise", list(WRONG))
def test_a_tensor_on_the_cpu_fails_without_a_gpu(exercise):
    msg = assert_rejected(CHECKS[exercise], WRONG[exercise], "'meta'", exercise, hidden=False)
    assert NAMED in msg or "was moved to the CPU" in msg or "is on 'cpu' while the inputs are on 'meta'" in msg, msg
    assert_rejected(CHECKS[exercise], WRONG[exercise], "'meta'", exercise, hidden=True)


def test_every_exercise_with_tensors_is_covered():
    assert set(WRONG) == set(RIGHT) - {"count_parameters"}


def rnn_step_reads_values(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    h = R["rnn_step"](x_t, h_prev, W_ih, W_hh, b_ih, b_hh)
    assert torch.isfinite(h).all(), "diverged"  # a value read: inconclusive on meta, and right
    return h


def clip_reads_the_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = sum(float(g.detach().pow(2).sum()) for g in grads) ** 0.5  # .item() via float()
    coef = max_norm / (total + 1e-6)
    if coef < 1:
        for g in grads:
            g.mul_(coef)
    return total


def batchify_via_python_ints(tokens, batch_size):
    L = int(tokens.numel()) // batch_size
    return torch.stack([tokens[b * L:(b + 1) * L] for b in range(batch_size)])


@pytest.mark.parametrize("exercise,fn", [("rnn_step", rnn_step_reads_values),
                                         ("clip_grad_norm_", clip_reads_the_norm),
                                         ("batchify", batchify_via_python_ints),
                                         ("clip_grad_norm_", R["clip_grad_norm_"])])
def test_right_code_that_reads_values_passes(exercise, fn):
    CHECKS[exercise](fn)
    CHECKS[exercise](fn, hidden=True)
