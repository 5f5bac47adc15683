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
# ---------------------------------------------------------------- 06: reverse_padded, bilstm, stacked_bilstm

def reverse_padded(x, lengths):
    t = torch.arange(x.shape[1], device=x.device)
    L = lengths[:, None]
    index = torch.where(t < L, L - 1 - t, t)  # (B, T)
    return x.gather(1, index[..., None].expand_as(x))


def bilstm(x, lengths, cell_fw, cell_bw):
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, lengths = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
        lengths = lengths.to(x.device)
    B, T, _ = x.shape
    mask = torch.arange(T, device=x.device) < lengths[:, None]  # (B, T)

    def run(cell, inputs):
        h = c = inputs.new_zeros(B, cell.hidden_size)
        outs = []
        for t in range(T):
            h_new, c_new = cell(inputs[:, t], (h, c))
            m = mask[:, t, None]
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(torch.where(m, h, torch.zeros_like(h)))
        return torch.stack(outs, 1), h, c

    out_f, h_f, c_f = run(cell_fw, x)
    out_b, h_b, c_b = run(cell_bw, reverse_padded(x, lengths))
    return (torch.cat([out_f, reverse_padded(out_b, lengths)], -1),
            (torch.stack([h_f, h_b]), torch.stack([c_f, c_b])))


@learner("reverse_padded", "whole_flip", "the whole padded tensor is flipped")
def reverse_padded_whole_flip(x, lengths):
    return x.flip(1)


@learner("reverse_padded", "arange_on_cpu", "mixes devices")
def reverse_padded_arange_on_cpu(x, lengths):
    t = torch.arange(x.shape[1])  # on the CPU whatever x's device
    L = lengths[:, None]
    index = torch.where(t < L, L - 1 - t, t)
    return x.gather(1, index[..., None].expand_as(x))


# the profile hook refuses masking.py whether the import runs its module code or the call its function
@learner("reverse_padded", "uses_library", "(rnncourse/masking.py) was called")
def reverse_padded_uses_library(x, lengths):
    from rnncourse.masking import reverse_padded as library_version
    return library_version(x, lengths)


def _bilstm_with(x, lengths, cell_fw, cell_bw, backward="within", flip_back=True, hold=True, swap=False):
    """A bidirectional layer with the named mistakes (the check tests' wrong learners)."""
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, lengths = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
        lengths = lengths.to(x.device)
    B, T, _ = x.shape
    mask = torch.arange(T, device=x.device) < lengths[:, None]

    def run(cell, inputs, hold):
        h = c = inputs.new_zeros(B, cell.hidden_size)
        outs = []
        for t in range(T):
            h_new, c_new = cell(inputs[:, t], (h, c))
            m = mask[:, t, None] if hold else torch.ones_like(mask[:, t, None])
            h, c = torch.where(m, h_new, h), torch.where(m, c_new, c)
            outs.append(h)
        return torch.stack(outs, 1), h, c

    out_f, h_f, c_f = run(cell_fw, x, hold)
    if backward == "within":
        out_b, h_b, c_b = run(cell_bw, reverse_padded(x, lengths), hold)
        if flip_back:
            out_b = reverse_padded(out_b, lengths)
    else:  # the whole padded tensor flipped: the backward direction starts on the padding
        out_b, h_b, c_b = run(cell_bw, x.flip(1), hold=False)
        out_b = out_b.flip(1)
    out = torch.cat([out_b, out_f] if swap else [out_f, out_b], -1) * mask[..., None]
    h_n = torch.stack([h_b, h_f] if swap else [h_f, h_b])
    c_n = torch.stack([c_b, c_f] if swap else [c_f, c_b])
    return out, (h_n, c_n)


@learner("bilstm", "whole_flip", "the whole padded tensor was flipped")
def bilstm_whole_flip(x, lengths, cell_fw, cell_bw):
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, lengths = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
        lengths = lengths.to(x.device)
    B, T, _ = x.shape
    mask = torch.arange(T, device=x.device) < lengths[:, None]  # (B, T)
    h = c = x.new_zeros(B, cell_fw.hidden_size)
    out_f = []
    for t in range(T):
        h2, c2 = cell_fw(x[:, t], (h, c))
        m = mask[:, t, None]
        h, c = torch.where(m, h2, h), torch.where(m, c2, c)
        out_f.append(h)
    hb = cb = x.new_zeros(B, cell_bw.hidden_size)
    out_b = []
    for t in reversed(range(T)):  # from T-1 down: short sequences start on their padding
        hb, cb = cell_bw(x[:, t], (hb, cb))
        out_b.append(hb)
    out = torch.cat([torch.stack(out_f, 1), torch.stack(out_b[::-1], 1)], -1) * mask[..., None]
    return out, (torch.stack([h, hb]), torch.stack([c, cb]))


@learner("bilstm", "not_flipped_back", "outputs are not flipped back")
def bilstm_not_flipped_back(x, lengths, cell_fw, cell_bw):
    return _bilstm_with(x, lengths, cell_fw, cell_bw, flip_back=False)


@learner("bilstm", "directions_swapped", "concatenated in the wrong order")
def bilstm_directions_swapped(x, lengths, cell_fw, cell_bw):
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, lengths = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
        lengths = lengths.to(x.device)
    B, T, _ = x.shape
    mask = torch.arange(T, device=x.device) < lengths[:, None]
    outs, hs, cs = [], [], []
    for cell, inputs in ((cell_fw, x), (cell_bw, reverse_padded(x, lengths))):
        h = c = x.new_zeros(B, cell.hidden_size)
        steps = []
        for t in range(T):
            h2, c2 = cell(inputs[:, t], (h, c))
            m = mask[:, t, None]
            h, c = torch.where(m, h2, h), torch.where(m, c2, c)
            steps.append(h * m)
        outs.append(torch.stack(steps, 1))
        hs.append(h)
        cs.append(c)
    outs[1] = reverse_padded(outs[1], lengths)
    return torch.cat([outs[1], outs[0]], -1), (torch.stack(hs), torch.stack(cs))  # backward half first


@learner("bilstm", "no_mask", "read after T steps")
def bilstm_no_mask(x, lengths, cell_fw, cell_bw):
    return _bilstm_with(x, lengths, cell_fw, cell_bw, hold=False)


@learner("bilstm", "zeros_on_cpu", "mixes devices")
def bilstm_zeros_on_cpu(x, lengths, cell_fw, cell_bw):
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, lengths = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
        lengths = lengths.to(x.device)
    B, T, _ = x.shape
    mask = torch.arange(T, device=x.device) < lengths[:, None]
    outs, hs, cs = [], [], []
    for cell, inputs in ((cell_fw, x), (cell_bw, reverse_padded(x, lengths))):
        h = c = torch.zeros(B, cell.hidden_size, dtype=x.dtype)  # on the CPU, whatever x's device
        steps = []
        for t in range(T):
            h2, c2 = cell(inputs[:, t], (h, c))
            m = mask[:, t, None]
            h, c = torch.where(m, h2, h), torch.where(m, c2, c)
            steps.append(h * m)
        outs.append(torch.stack(steps, 1))
        hs.append(h)
        cs.append(c)
    outs[1] = reverse_padded(outs[1], lengths)
    return torch.cat(outs, -1), (torch.stack(hs), torch.stack(cs))


@learner("bilstm", "uses_nn_lstm", "torch.nn.modules.rnn.LSTM was built")
def bilstm_uses_nn_lstm(x, lengths, cell_fw, cell_bw):
    lstm = torch.nn.LSTM(cell_fw.input_size, cell_fw.hidden_size, bidirectional=True,
                         batch_first=True).to(x)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
    out, state = lstm(packed)
    return torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)[0], state


@learner("bilstm", "no_grad", "not connected to x")
def bilstm_no_grad(x, lengths, cell_fw, cell_bw):
    with torch.no_grad():
        return bilstm(x, lengths, cell_fw, cell_bw)


@learner("stacked_bilstm", "h_n_by_direction", "ordered by direction")
def stacked_h_n_by_direction(x, lengths, layers, dropout):
    out, hs, cs = x, [], []
    for k, (fw, bw) in enumerate(layers):
        out, (h, c) = bilstm(dropout(out) if k else out, lengths, fw, bw)
        hs.append(h)
        cs.append(c)
    h_n, c_n = torch.stack(hs), torch.stack(cs)  # (layers, directions, B, H)
    return out, (h_n.transpose(0, 1).reshape(-1, *h_n.shape[2:]), c_n.transpose(0, 1).reshape(-1, *c_n.shape[2:]))


@learner("stacked_bilstm", "forward_half", "only one direction's half")
def stacked_forward_half(x, lengths, layers, dropout):
    (fw0, bw0), (fw1, bw1) = layers
    out, (h0, c0) = bilstm(x, lengths, fw0, bw0)
    out, (h1, c1) = bilstm(dropout(out[..., :fw0.hidden_size]), lengths, fw1, bw1)
    return out, (torch.cat([h0, h1]), torch.cat([c0, c1]))


@learner("stacked_bilstm", "dropout_after_last", "after the last layer")
def stacked_dropout_after_last(x, lengths, layers, dropout):
    out, hs, cs = x, [], []
    for fw, bw in layers:
        out, (h, c) = bilstm(out, lengths, fw, bw)
        out = dropout(out)  # after every layer, the last one too
        hs.append(h)
        cs.append(c)
    return out, (torch.cat(hs), torch.cat(cs))


@learner("stacked_bilstm", "dropout_on_state", "recurrent state")
def stacked_dropout_on_state(x, lengths, layers, dropout):
    out, hs, cs = x, [], []
    for fw, bw in layers:
        def dropped(cell):  # a cell whose incoming hidden state goes through dropout
            return lambda x_t, state: cell(x_t, (dropout(state[0]), state[1]))
        dfw, dbw = dropped(fw), dropped(bw)
        dfw.hidden_size = dbw.hidden_size = fw.hidden_size
        out, (h, c) = bilstm(out, lengths, dfw, dbw)
        hs.append(h)
        cs.append(c)
    return out, (torch.cat(hs), torch.cat(cs))
# ---------------------------------------------------------------- 11: linear_recurrence, parallel_scan, mingru, stream_step

def parallel_scan(a, b, h0):
    """Lesson 11's notebook helper, correct: Hillis–Steele over (a_t, b_t), h0 folded into step 1."""
    A, Bv, d = a, torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1), 1
    while d < a.shape[1]:
        A_prev = torch.cat([torch.ones_like(A[:, :d]), A[:, :-d]], dim=1)
        B_prev = torch.cat([torch.zeros_like(Bv[:, :d]), Bv[:, :-d]], dim=1)
        A, Bv, d = A * A_prev, A * B_prev + Bv, 2 * d
    return Bv


@learner("linear_recurrence", "recurrence_shifted", "shifted by one step")
def linear_recurrence_shifted(a, b, h0):
    h, states = h0, []
    for t in range(a.shape[1]):
        states.append(h)
        h = a[:, t] * h + b[:, t]
    return torch.stack(states, dim=1)


@learner("parallel_scan", "loop_in_disguise", "is not parallel")
def parallel_scan_loop_in_disguise(a, b, h0):
    import functools
    steps = functools.reduce(lambda hs, ab: hs + [ab[0] * hs[-1] + ab[1]],
                             zip(a.unbind(1), b.unbind(1)), [h0])
    return torch.stack(steps[1:], dim=1)


@learner("parallel_scan", "combine_order", "the combine is applied in the wrong order")
def parallel_scan_combine_order(a, b, h0):
    A, Bv, d = a, torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1), 1
    while d < a.shape[1]:
        A_prev = torch.cat([torch.ones_like(A[:, :d]), A[:, :-d]], dim=1)
        B_prev = torch.cat([torch.zeros_like(Bv[:, :d]), Bv[:, :-d]], dim=1)
        A, Bv, d = A * A_prev, A_prev * Bv + B_prev, 2 * d  # the earlier pair applied last
    return Bv


@learner("mingru", "gate_reads_state", "the gate fed h_{t-1}")
def mingru_gate_reads_state(x, h0, W_ih, b_ih):
    H = h0.shape[1]
    h, states = h0, []
    for t in range(x.shape[1]):
        g = x[:, t] @ W_ih.T + b_ih
        z = torch.sigmoid(g[:, :H] + h)  # the gate sees the previous state, as a GRU's does
        h = (1 - z) * h + z * g[:, H:]
        states.append(h)
    return torch.stack(states, dim=1)


@learner("stream_step", "state_not_carried", "the state is not carried")
def stream_step_state_not_carried(model, x_t, state):
    L, H = model.rnn.num_layers, model.rnn.hidden_size
    state = x_t.new_zeros(L, x_t.shape[0], H)  # starts again at every token
    inp, new = x_t, []
    for k in range(L):
        W, b = model.rnn.layer_weights(k)
        g, cand = (inp @ W.T + b).chunk(2, dim=-1)
        z = torch.sigmoid(g)
        inp = (1 - z) * state[k] + z * cand
        new.append(inp)
    return model.head(inp), torch.stack(new)


@learner("stream_step", "keeps_history", "constant-size state")
def stream_step_keeps_history(model, x_t, state):
    # keeps every input seen so far and reruns the whole prefix: right outputs, growing state
    history = x_t[:, None] if state is None else torch.cat([state, x_t[:, None]], dim=1)
    H, L = model.rnn.hidden_size, model.rnn.num_layers
    inp = history
    for k in range(L):
        W, b = model.rnn.layer_weights(k)
        g, cand = (inp @ W.T + b).chunk(2, dim=-1)
        z = torch.sigmoid(g)
        inp = parallel_scan(1 - z, z * cand, inp.new_zeros(inp.shape[0], H))
    return model.head(inp[:, -1]), history


@learner("stream_step", "zeros_on_cpu", "'meta' device")
def stream_step_zeros_on_cpu(model, x_t, state):
    L, H = model.rnn.num_layers, model.rnn.hidden_size
    if state is None:
        state = torch.zeros(L, x_t.shape[0], H, dtype=x_t.dtype)  # on the CPU, whatever x_t's device
    inp, new = x_t, []
    for k in range(L):
        W, b = model.rnn.layer_weights(k)
        g, cand = (inp @ W.T + b).chunk(2, dim=-1)
        z = torch.sigmoid(g)
        inp = (1 - z) * state[k] + z * cand
        new.append(inp)
    return model.head(inp), torch.stack(new)
