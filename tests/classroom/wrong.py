"""Wrong learners' functions, written once for the check tests and the simulated classes.

Each function below is what a learner might write for an exercise, with the
exercise's own signature, registered with :func:`learner` under the student id
the simulated class uses and the diagnosis the check must give. The check
tests call the functions (``shared("rnn_step")``); the simulated classes hand in
their bodies (``body(fn)``) in place of the solution, where the notebook's
own helpers (``rnn_step``, ``rnn_states``, ``lstm_step``) are the instructor's.
The helpers of that name here are correct versions, so a body means the same
in both places. Bodies use only ``torch`` and ``rnncourse``, which every
notebook imports.
"""
from __future__ import annotations

import ast
import inspect
import textwrap
from dataclasses import dataclass
from typing import Callable

import torch

import rnncourse


@dataclass(frozen=True)
class Learner:
    exercise: str      # the function the learner wrote
    student: str       # the simulated learner's id, and the key in the check tests
    fn: Callable
    diagnosis: str     # a phrase the check's message must contain


LEARNERS: dict = {}  # exercise -> {student: Learner}


def learner(exercise: str, student: str, diagnosis: str):
    def register(fn):
        LEARNERS.setdefault(exercise, {})[student] = Learner(exercise, student, fn, diagnosis)
        return fn
    return register


def shared(exercise: str) -> dict:
    """student -> (function, diagnosis), the shape of the check tests' tables."""
    return {s: (w.fn, w.diagnosis) for s, w in LEARNERS.get(exercise, {}).items()}


def body(fn: Callable) -> str:
    """The code between a function's ``def`` line (and docstring) and its end."""
    lines, start = inspect.getsourcelines(fn)
    node = ast.parse(textwrap.dedent("".join(lines))).body[0]
    stmts = node.body
    if isinstance(stmts[0], ast.Expr) and isinstance(getattr(stmts[0], "value", None), ast.Constant):
        stmts = stmts[1:]
    first = stmts[0].lineno - 1  # lines of the dedented source, 0-based
    return textwrap.dedent("".join(lines[first:]))


# ---------------------------------------------------------------- the notebooks' helpers, correct

def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)


def rnn_states(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, states = h0, [h0]
    for t in range(x.shape[1]):
        h = rnn_step(x[:, t], h, W_ih, W_hh, b_ih, b_hh)
        states.append(h)
    return torch.stack(states, dim=1)  # (B, T+1, H)


def lstm_step(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    i, f, g, o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    c_t = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_t), c_t


# ---------------------------------------------------------------- 00: one_hot, embed

@learner("one_hot", "one_hot_from_max", "must have num_classes entries")
def one_hot_from_max(indices, num_classes):
    return torch.nn.functional.one_hot(indices).float()


@learner("embed", "embed_columns", "weight[:, indices] picks columns")
def embed_columns(indices, weight):
    return weight[:, indices]


# ---------------------------------------------------------------- 01: rnn_step, rnn_forward, next_token_probs

@learner("rnn_step", "W_hh_transposed", "W_hh is transposed")
def rnn_step_W_hh_transposed(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh + b_hh)


@learner("rnn_step", "no_tanh", "the tanh is missing")
def rnn_step_no_tanh(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh


@learner("rnn_step", "no_b_hh", "b_hh is left out")
def rnn_step_no_b_hh(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T)


@learner("rnn_step", "uses_library", "rnncourse.RNNCell was called")
def rnn_step_uses_library(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    cell = rnncourse.RNNCell(W_ih.shape[1], W_ih.shape[0]).to(W_ih)
    with torch.no_grad():
        for p, w in zip(cell.parameters(), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(w)
    return cell(x_t, h_prev)


@learner("rnn_forward", "state_not_carried", "the state is not carried")
def rnn_forward_state_not_carried(x, h0, W_ih, W_hh, b_ih, b_hh):
    states = [rnn_step(x[:, t], h0, W_ih, W_hh, b_ih, b_hh) for t in range(x.shape[1])]
    return torch.stack(states, dim=1), states[-1]


@learner("rnn_forward", "time_first", "your function raised")
def rnn_forward_time_first(x, h0, W_ih, W_hh, b_ih, b_hh):
    h, states = h0, []
    for t in range(x.shape[1]):
        h = rnn_step(x[t], h, W_ih, W_hh, b_ih, b_hh)
        states.append(h)
    return torch.stack(states, dim=1), h


@learner("rnn_forward", "uses_library", "fused recurrent kernel 'rnn_tanh'")
def rnn_forward_uses_library(x, h0, W_ih, W_hh, b_ih, b_hh):
    rnn = torch.nn.RNN(W_ih.shape[1], W_ih.shape[0], batch_first=True).to(W_ih)
    with torch.no_grad():
        for p, w in zip(rnn.parameters(), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(w)
    outputs, h_n = rnn(x, h0.unsqueeze(0))
    return outputs, h_n[0]


@learner("next_token_probs", "softmax_over_batch", "softmax is taken over dim 0")
def next_token_probs_softmax_over_batch(h, W_hy, b_y):
    return torch.softmax(h @ W_hy.T + b_y, dim=0)


# ---------------------------------------------------------------- 02: rnn_backward, batchify, tbptt_batches

@learner("rnn_backward", "uses_autograd", "autograd was switched on")
def rnn_backward_uses_autograd(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    leaves = [t.detach().clone().requires_grad_() for t in (x, h0, W_ih, W_hh, b_ih, b_hh)]
    with torch.enable_grad():
        states = rnn_states(*leaves)[:, 1:]
        (states * dh).sum().backward()
    return tuple(leaf.grad for leaf in leaves)


@learner("rnn_backward", "no_tanh_derivative", "the tanh derivative (1 - h_t**2) is left out")
def rnn_backward_no_tanh_derivative(x, h0, W_ih, W_hh, b_ih, b_hh, dh):
    hs = rnn_states(x, h0, W_ih, W_hh, b_ih, b_hh)
    dz = torch.zeros_like(dh)
    carry = torch.zeros_like(h0)
    for t in range(x.shape[1] - 1, -1, -1):
        dz[:, t] = dh[:, t] + carry
        carry = dz[:, t] @ W_hh
    db = dz.sum(dim=(0, 1))
    return (dz @ W_ih, carry, torch.einsum("bth,bti->hi", dz, x),
            torch.einsum("bth,btk->hk", dz, hs[:, :-1]), db, db)


@learner("batchify", "interleaved_streams", "interleaved")
def batchify_interleaved(tokens, batch_size):
    L = tokens.shape[0] // batch_size
    return tokens[: batch_size * L].view(L, batch_size).T


@learner("tbptt_batches", "unshifted_targets", "targets are not shifted")
def tbptt_batches_unshifted(streams, seq_len):
    chunks = []
    for i in range(0, streams.shape[1] - 1, seq_len):
        n = min(seq_len, streams.shape[1] - 1 - i)
        chunks.append((streams[:, i:i + n], streams[:, i:i + n]))
    return chunks


# ---------------------------------------------------------------- 03: jacobian_norms, clip_grad_norm_

@learner("jacobian_norms", "W_hh_transposed", "W_hh is transposed")
def jacobian_norms_W_hh_transposed(states, W_hh):
    B, T1, H = states.shape
    P = torch.eye(H, dtype=states.dtype, device=states.device).expand(B, H, H)
    norms = [torch.linalg.matrix_norm(P, ord=2)]
    for k in range(T1 - 1, 0, -1):
        P = P @ ((1 - states[:, k] ** 2)[:, :, None] * W_hh.T)
        norms.append(torch.linalg.matrix_norm(P, ord=2))
    return torch.stack(norms[::-1], dim=1)


@learner("clip_grad_norm_", "post_clip_norm", "norm after clipping")
def clip_post_clip_norm(parameters, max_norm):
    params = [p for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
    if total > max_norm:
        for p in params:
            p.grad.mul_(max_norm / total)
    return torch.sqrt(sum((p.grad ** 2).sum() for p in params))


@learner("clip_grad_norm_", "per_parameter", "clipped by its own norm")
def clip_per_parameter(parameters, max_norm):
    total = 0.0
    for p in parameters:
        if p.grad is not None:
            n = p.grad.norm()
            total = total + n ** 2
            if n > max_norm:
                p.grad.mul_(max_norm / n)
    return total ** 0.5


@learner("clip_grad_norm_", "calls_torch", "torch.nn.utils.clip_grad_norm_ was called")
def clip_calls_torch(parameters, max_norm):
    return torch.nn.utils.clip_grad_norm_(parameters, max_norm)


# ---------------------------------------------------------------- 04: lstm_step, lstm_forward, peephole_lstm_step

@learner("lstm_step", "gate_order_ifog", "read in the order i,f,o,g instead of PyTorch's i,f,g,o")
def lstm_step_gate_order_ifog(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    i, f, o, g = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    c_t = torch.sigmoid(f) * c_prev + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_t), c_t


@learner("lstm_step", "uses_library", "fused recurrent kernel 'lstm_cell'")
def lstm_step_uses_library(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh):
    cell = torch.nn.LSTMCell(W_ih.shape[1], h_prev.shape[1]).to(W_ih)
    with torch.no_grad():
        for p, w in zip(cell.parameters(), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(w)
    return cell(x_t, (h_prev, c_prev))


@learner("lstm_forward", "cell_not_carried", "the cell state is not carried")
def lstm_forward_cell_not_carried(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    h, outputs = h0, []
    for t in range(x.shape[1]):
        h, c = lstm_step(x[:, t], h, c0, W_ih, W_hh, b_ih, b_hh)
        outputs.append(h)
    return torch.stack(outputs, dim=1), (h, c)


@learner("lstm_forward", "uses_library", "rnncourse.LSTM was called")
def lstm_forward_uses_library(x, h0, c0, W_ih, W_hh, b_ih, b_hh):
    lstm = rnncourse.LSTM(W_ih.shape[1], h0.shape[1], batch_first=True).to(W_ih)
    with torch.no_grad():
        for p, w in zip(lstm.parameters(), (W_ih, W_hh, b_ih, b_hh)):
            p.copy_(w)
    outputs, (h_n, c_n) = lstm(x, (h0[None], c0[None]))
    return outputs, (h_n[0], c_n[0])


@learner("peephole_lstm_step", "peephole_old_c", "the output gate peeks at the old cell state")
def peephole_old_c(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    z_i, z_f, z_g, z_o = (x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh).chunk(4, dim=1)
    i = torch.sigmoid(z_i + w_ci * c_prev)
    f = torch.sigmoid(z_f + w_cf * c_prev)
    o = torch.sigmoid(z_o + w_co * c_prev)
    c_t = f * c_prev + i * torch.tanh(z_g)
    return o * torch.tanh(c_t), c_t


@learner("peephole_lstm_step", "uses_library", "rnncourse.PeepholeLSTMCell was called")
def peephole_uses_library(x_t, h_prev, c_prev, W_ih, W_hh, b_ih, b_hh, w_ci, w_cf, w_co):
    cell = rnncourse.PeepholeLSTMCell(W_ih.shape[1], h_prev.shape[1]).to(W_ih)
    cell.load_state_dict({"weight_ih": W_ih, "weight_hh": W_hh, "bias_ih": b_ih, "bias_hh": b_hh,
                          "weight_ci": w_ci, "weight_cf": w_cf, "weight_co": w_co})
    return cell(x_t, (h_prev, c_prev))


# ---------------------------------------------------------------- 05: gru_step, count_parameters

@learner("gru_step", "cho_reset", "as in Cho et al. (2014)")
def gru_step_cho_reset(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    W_ir, W_iz, W_in = W_ih.chunk(3)
    W_hr, W_hz, W_hn = W_hh.chunk(3)
    b_ir, b_iz, b_in = b_ih.chunk(3)
    b_hr, b_hz, b_hn = b_hh.chunk(3)
    r = torch.sigmoid(x_t @ W_ir.T + b_ir + h_prev @ W_hr.T + b_hr)
    z = torch.sigmoid(x_t @ W_iz.T + b_iz + h_prev @ W_hz.T + b_hz)
    n = torch.tanh(x_t @ W_in.T + b_in + (r * h_prev) @ W_hn.T + b_hn)
    return (1 - z) * n + z * h_prev


@learner("gru_step", "z_swapped", "z's role is swapped")
def gru_step_z_swapped(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):
    x_r, x_z, x_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=1)
    h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=1)
    r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
    n = torch.tanh(x_n + r * h_n)
    return z * n + (1 - z) * h_prev


@learner("count_parameters", "counts_a_module", "built a RNN module")
def count_parameters_counts_a_module(kind, input_size, hidden_size, num_layers=1, bidirectional=False,
                                     bias=True):
    module = getattr(torch.nn, kind)(input_size, hidden_size, num_layers=num_layers,
                                     bidirectional=bidirectional, bias=bias)
    return sum(p.numel() for p in module.parameters())


@learner("count_parameters", "deep_layers_read_input", "layers after the first take input_size inputs")
def count_parameters_deep_layers_read_input(kind, input_size, hidden_size, num_layers=1,
                                            bidirectional=False, bias=True):
    G = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind] * hidden_size
    D = 2 if bidirectional else 1
    per_layer = G * input_size + G * hidden_size + (G if bias else 0)
    return num_layers * D * per_layer


# ---------------------------------------------------------------- 07: pad_batch, masked_cross_entropy, last_valid, masked_mean
# (the simulated learners of 07 make two mistakes each, in two exercises: one student id, two learners)

@learner("pad_batch", "pads_left", "the padding goes on the left")
def pad_batch_pads_left(sequences, pad_value=0):
    T = max(s.shape[0] for s in sequences)
    first = sequences[0]
    padded = first.new_full((len(sequences), T, *first.shape[1:]), pad_value)
    for b, s in enumerate(sequences):
        padded[b, T - s.shape[0]:] = s
    lengths = torch.tensor([s.shape[0] for s in sequences], device=first.device)
    mask = torch.arange(T, device=first.device)[None, :] < lengths[:, None]
    return padded, lengths, mask


@learner("pad_batch", "off_by_one", "the mask compares t <= lengths")
def pad_batch_mask_off_by_one(sequences, pad_value=0):
    T = max(s.shape[0] for s in sequences)
    first = sequences[0]
    padded = first.new_full((len(sequences), T, *first.shape[1:]), pad_value)
    for b, s in enumerate(sequences):
        padded[b, :s.shape[0]] = s
    lengths = torch.tensor([s.shape[0] for s in sequences], device=first.device)
    mask = torch.arange(T, device=first.device)[None, :] <= lengths[:, None]
    return padded, lengths, mask


@learner("pad_batch", "no_device", "created without device=")
def pad_batch_no_device(sequences, pad_value=0):
    T = max(s.shape[0] for s in sequences)
    first = sequences[0]
    padded = torch.full((len(sequences), T, *first.shape[1:]), pad_value, dtype=first.dtype)
    for b, s in enumerate(sequences):
        padded[b, :s.shape[0]] = s
    lengths = torch.tensor([s.shape[0] for s in sequences])
    return padded, lengths, torch.arange(T)[None, :] < lengths[:, None]


@learner("masked_cross_entropy", "counts_positions", "divided by all B·T positions")
def masked_cross_entropy_divides_by_all_positions(logits, targets, mask):
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return (nll * mask).sum() / mask.numel()


@learner("masked_cross_entropy", "pads_left", "a mean of per-sequence means")
def masked_cross_entropy_mean_of_sequence_means(logits, targets, mask):
    logp = torch.log_softmax(logits, dim=-1)
    nll = -logp.gather(-1, targets.unsqueeze(-1)).squeeze(-1)
    return ((nll * mask).sum(1) / mask.sum(1)).mean()


@learner("last_valid", "counts_positions", "reads the last padded position T-1")
def last_valid_reads_T_minus_1(outputs, lengths):
    return outputs[:, -1]


@learner("last_valid", "off_by_one", "one step into the padding")
def last_valid_reads_lengths(outputs, lengths):
    return outputs[torch.arange(outputs.shape[0], device=outputs.device), lengths]


@learner("last_valid", "no_device", "created without device=")
def last_valid_arange_without_device(outputs, lengths):
    rows = torch.arange(outputs.shape[0])
    T = outputs.shape[1]
    onehot = (torch.arange(T)[None, :] == (lengths - 1)[:, None]).to(outputs.dtype)  # (B, T)
    return (onehot[rows][:, :, None] * outputs).sum(1)


@learner("masked_mean", "mean_counts_padding", "the pooling counts the padding")
def masked_mean_counts_padding(outputs, mask):
    return outputs.mean(dim=1)


@learner("masked_mean", "uses_library", "masked_mean (rnncourse/masking.py) was called")
def masked_mean_uses_library(outputs, mask):
    from rnncourse.masking import masked_mean
    return masked_mean(outputs, mask)
