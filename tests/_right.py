"""One right answer per exercise of lessons 00-05, and each exercise's check: the
walk-around tests (tests/test_checks_{switched_off,devices,gradients,sizes,messages}.py)
start from these and change one thing."""
from __future__ import annotations

import torch

from rnncourse.checks import bptt, gru, lstm, rnn, vanishing, welcome


def one_hot(indices, num_classes):
    return (indices.unsqueeze(-1) == torch.arange(num_classes, device=indices.device)).float()


def embed(indices, weight):
    return weight[indices]


def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


def rnn_forward(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, outs = h0, []
    for t in range(x.shape[1]):
        h = rnn_step(x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), h


def next_token_probs(h, W_hy, b_y):
    return torch.softmax(h @ W_hy.T + b_y, dim=-1)


def rnn_backward(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    h, hs = h0, [h0]
    for t in range(x.shape[1]):
        h = rnn_step(x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        hs.append(h)
    hs = torch.stack(hs, dim=1)  # (B, T+1, H)
    dz = torch.zeros_like(dh)
    carry = torch.zeros_like(h0)
    for t in range(x.shape[1] - 1, -1, -1):
        dz[:, t] = (dh[:, t] + carry) * (1 - hs[:, t + 1] ** 2)
        carry = dz[:, t] @ W_hh
    db = dz.sum(dim=(0, 1))
    return (dz @ W_ih, carry, torch.einsum("bth,bti->hi", dz, x), torch.einsum("bth,btk->hk", dz, hs[:, :-1]),
            db, db.clone())


def batchify(tokens, batch_size):
    L = tokens.shape[0] // batch_size
    return tokens[: batch_size * L].reshape(batch_size, L)


def tbptt_batches(streams, seq_len):
    L, chunks = streams.shape[1], []
    for i in range(0, L - 1, seq_len):
        n = min(seq_len, L - 1 - i)
        chunks.append((streams[:, i:i + n], streams[:, i + 1:i + 1 + n]))
    return chunks


def jacobian_norms(states, W_hh):
    B, T1, H = states.shape
    P = torch.eye(H, dtype=states.dtype, device=states.device).expand(B, H, H)
    norms = [torch.linalg.matrix_norm(P, ord=2)]
    for k in range(T1 - 1, 0, -1):
        P = P @ ((1 - states[:, k] ** 2)[:, :, None] * W_hh)
        norms.append(torch.linalg.matrix_norm(P, ord=2))
    return torch.stack(norms[::-1], dim=1)


def clip_grad_norm_(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((g.detach() ** 2).sum() for g in grads))
    if total > max_norm:  # reads a value: inconclusive on the meta device, and right
        for g in grads:
            g.mul_(max_norm / (total + 1e-6))
    return total


def lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    c_t = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_t), c_t


def lstm_forward(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, c, outs = h0, c0, []
    for t in range(x.shape[1]):
        h, c = lstm_step(x[:, t], h, c, W_ih, W_hh, b_ih, b_hh)
        outs.append(h)
    return torch.stack(outs, dim=1), (h, c)


def peephole_lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    z_i, z_f, z_g, z_o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    c_t = torch.sigmoid(z_f + w_cf * c_prev) * c_prev + torch.sigmoid(z_i + w_ci * c_prev) * torch.tanh(z_g)
    return torch.sigmoid(z_o + w_co * c_t) * torch.tanh(c_t), c_t


def gru_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    return (1 - z) * torch.tanh(x_n + r * h_n) + z * h_prev


def count_parameters(kind, input_size, hidden_size, num_layers=1, bidirectional=False, bias=True):
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind] * hidden_size
    D = 2 if bidirectional else 1
    total, inputs = 0, input_size
    for _ in range(num_layers):
        total += D * (G * inputs + G * hidden_size + (2 * G if bias else 0))
        inputs = D * hidden_size
    return total


RIGHT = {fn.__name__: fn for fn in (
    one_hot, embed, rnn_step, rnn_forward, next_token_probs, rnn_backward, batchify, tbptt_batches,
    jacobian_norms, clip_grad_norm_, lstm_step, lstm_forward, peephole_lstm_step, gru_step, count_parameters)}
CHECKS = {name[len("check_"):]: fn for module in (welcome, rnn, bptt, vanishing, lstm, gru)
          for name, fn in vars(module).items() if name.startswith("check_")}
LESSON = {"one_hot": "00", "embed": "00", "rnn_step": "01", "rnn_forward": "01", "next_token_probs": "01",
          "rnn_backward": "02", "batchify": "02", "tbptt_batches": "02", "jacobian_norms": "03",
          "clip_grad_norm_": "03", "lstm_step": "04", "lstm_forward": "04", "peephole_lstm_step": "04",
          "gru_step": "05", "count_parameters": "05"}
