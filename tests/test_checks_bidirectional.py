"""The lesson-06 checks accept correct code however it is written (looped or vectorised,
float32 or float64, padded or packed, any device) and reject the named wrong
variants of a bidirectional and a stacked layer with their diagnosis."""
import sys
import warnings

import pytest
import torch

from _reject import assert_rejected
from classroom.wrong import bilstm as bilstm_right
from classroom.wrong import reverse_padded as reverse_right
from classroom.wrong import shared
from rnncourse.checks import bidirectional_runs as R
from rnncourse.checks.bidirectional import (
    MarkedDropout, check_bilstm, check_reverse_padded, check_stacked_bilstm,
)
from rnncourse.checks.core import CheckFailed


@pytest.fixture(autouse=True)
def one_thread():
    # tiny matrices: on a loaded machine extra threads only wait for each other
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ---------------------------------------------------------------- correct code

def reverse_looped(x, lengths):
    # one sequence at a time, in float64 whatever comes in
    out = x.double().clone()
    for b, L in enumerate(lengths.tolist()):
        out[b, :L] = x[b, :L].double().flip(0)
    return out


def reverse_index_select(x, lengths):
    rows = []
    for b in range(x.shape[0]):
        L = int(lengths[b])
        idx = torch.cat([torch.arange(L - 1, -1, -1), torch.arange(L, x.shape[1])]).to(x.device)
        rows.append(x[b].index_select(0, idx))
    return torch.stack(rows)


def reverse_zero_padding(x, lengths):
    # writes zeros at the padding instead of keeping it: the same for zero-padded batches
    T = x.shape[1]
    t = torch.arange(T, device=x.device)
    idx = (lengths[:, None] - 1 - t).clamp(min=0)
    y = x.gather(1, idx[..., None].expand_as(x))
    return y * (t < lengths[:, None])[..., None]


def bilstm_per_sequence(x, lengths, cell_fw, cell_bw):
    """Each sequence alone, the cells on (1, I) rows; packed input unpacked first."""
    if isinstance(x, torch.nn.utils.rnn.PackedSequence):
        x, lengths = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
    B, T, _ = x.shape
    H = cell_fw.hidden_size
    outs, hs, cs = [], [], []
    for b in range(B):
        L = int(lengths[b])
        seq = x[b, :L]

        def run(cell, steps):
            h = c = x.new_zeros(1, H)
            out = []
            for s in steps:
                h, c = cell(s[None], (h, c))
                out.append(h[0])
            return torch.stack(out), h[0], c[0]
        of, hf, cf = run(cell_fw, seq)
        ob, hb, cb = run(cell_bw, seq.flip(0))
        row = torch.cat([of, ob.flip(0)], -1)
        outs.append(torch.cat([row, row.new_zeros(T - L, 2 * H)]))
        hs.append(torch.stack([hf, hb]))
        cs.append(torch.stack([cf, cb]))
    return torch.stack(outs), (torch.stack(hs, 1), torch.stack(cs, 1))


def bilstm_packed_out(x, lengths, cell_fw, cell_bw):
    """Returns a PackedSequence for a packed input, as nn.LSTM does."""
    packed = isinstance(x, torch.nn.utils.rnn.PackedSequence)
    out, state = bilstm_right(x, lengths, cell_fw, cell_bw)
    if packed:
        _, L = torch.nn.utils.rnn.pad_packed_sequence(x, batch_first=True)
        out = torch.nn.utils.rnn.pack_padded_sequence(out, L, batch_first=True, enforce_sorted=False)
    return out, state


def stacked_loop(x, lengths, layers, dropout):
    out, hs, cs = x, [], []
    for k, (fw, bw) in enumerate(layers):
        if k > 0:
            out = dropout(out)
        out, (h, c) = bilstm_right(out, lengths, fw, bw)
        hs.append(h)
        cs.append(c)
    return out, (torch.cat(hs), torch.cat(cs))


def stacked_unrolled(x, lengths, layers, dropout):
    (f0, b0), (f1, b1) = layers
    o0, (h0, c0) = bilstm_per_sequence(x, lengths, f0, b0)
    o1, (h1, c1) = bilstm_per_sequence(dropout(o0), lengths, f1, b1)
    return o1, [torch.stack([h0[0], h0[1], h1[0], h1[1]]), torch.stack([c0[0], c0[1], c1[0], c1[1]])]


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [reverse_right, reverse_looped, reverse_index_select, reverse_zero_padding])
def test_reverse_padded_accepts_correct_code(fn, hidden):
    check_reverse_padded(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [bilstm_right, bilstm_per_sequence, bilstm_packed_out])
def test_bilstm_accepts_correct_code(fn, hidden):
    check_bilstm(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [stacked_loop, stacked_unrolled])
def test_stacked_accepts_correct_code(fn, hidden):
    check_stacked_bilstm(fn, hidden=hidden)


def test_the_cells_kernel_is_allowed_and_the_layers_kernel_is_not():
    # nn.LSTMCell runs torch's fused lstm_cell kernel: allowed. The layer kernel (torch.lstm,
    # what nn.LSTM calls) is blocked even when called directly.
    def via_cell_kernel(x, lengths, cell_fw, cell_bw):
        out, state = bilstm_right(x, lengths, cell_fw, cell_bw)
        x0 = cell_fw.weight_ih.new_zeros(state[0].shape[1], cell_fw.input_size)
        torch.lstm_cell(x0, (state[0][0], state[1][0]), cell_fw.weight_ih, cell_fw.weight_hh,
                        cell_fw.bias_ih, cell_fw.bias_hh)
        return out, state

    def via_layer_kernel(x, lengths, cell_fw, cell_bw):
        B, H = x.shape[0], cell_fw.hidden_size
        h0 = x.new_zeros(2, B, H)
        params = [cell_fw.weight_ih, cell_fw.weight_hh, cell_fw.bias_ih, cell_fw.bias_hh,
                  cell_bw.weight_ih, cell_bw.weight_hh, cell_bw.bias_ih, cell_bw.bias_hh]
        out, h, c = torch.lstm(x, (h0, h0), params, True, 1, 0.0, False, True, True)
        return out, (h, c)
    check_bilstm(via_cell_kernel, hidden=True)
    assert_rejected(check_bilstm, via_layer_kernel, "fused recurrent layer kernel 'lstm'", "bilstm")


def test_right_answer_writes_nothing_to_stderr(capfd):
    def noisy(*args):
        warnings.warn("a harmless warning from the learner's code")
        print("debugging output on stderr", file=sys.stderr)
        return bilstm_right(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_bilstm(noisy, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- the references

def test_runs_match_torch_and_its_gradients():
    gen = torch.Generator().manual_seed(0)
    B, T, I, H = 4, 7, 3, 5
    L = torch.tensor([7, 1, 4, 6])
    x = torch.randn(B, T, I, generator=gen, dtype=torch.float64)
    x = x * (torch.arange(T)[None, :, None] < L[:, None, None])
    layers = [tuple(tuple(torch.randn(*s, generator=gen, dtype=torch.float64) * 0.5
                          for s in ((4 * H, i), (4 * H, H), (4 * H,), (4 * H,))) for _ in range(2))
              for i in (I, 2 * H)]
    for n in (1, 2):
        want = R.torch_lstm(x, L, layers[:n])
        got = R.stacked(x, L, layers[:n])
        for a, b in zip(got, want):
            assert torch.allclose(a, b, atol=1e-12)
    # the padded batch run without packing equals running through the padding, backward whole-flipped
    want = R.torch_lstm(x, L, layers[:1], packed=False)
    got = R.bilstm(x, L, *layers[0], forward=dict(masked=False, pad="state"),
                   backward=dict(reverse="whole", masked=False, pad="state"))
    for a, b in zip(got, want):
        assert torch.allclose(a, b, atol=1e-12)


def test_marked_dropout_is_torch_dropout_in_distribution():
    d = MarkedDropout(0.4, seed=3).train()
    x = torch.ones(200, 50, dtype=torch.float64)
    y = d(x)
    kept = (y != 0).double().mean().item()
    assert abs(kept - 0.6) < 0.02 and torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.6))
    assert d.calls == [(200, 50)]
    assert torch.equal(d.eval()(x), x)


# ---------------------------------------------------------------- wrong code

def _bad_shape(x, lengths, cell_fw, cell_bw):
    out, (h, c) = bilstm_right(x, lengths, cell_fw, cell_bw)
    return out, (h.transpose(0, 1).reshape(h.shape[1], -1), c)


def reverse_off_by_one(x, lengths):
    T = x.shape[1]
    t = torch.arange(T, device=x.device)
    L = lengths[:, None]
    idx = torch.where(t < L, (L - t) % T, t)  # lengths[b] - t: one too far
    return x.gather(1, idx[..., None].expand_as(x))


WRONG_REVERSE = {
    **shared("reverse_padded"),
    "not reversed": (lambda x, L: x.clone(), "not reversed at all"),
    "off by one": (reverse_off_by_one, "off by one"),
    "float32": (lambda x, L: reverse_right(x, L).float(), "precision was lost"),
}

WRONG_BILSTM = {
    **shared("bilstm"),
    "h_n flat": (_bad_shape, "stack the 2 final states"),
    "h and c swapped": (lambda *a: (lambda o, s: (o, s[::-1]))(*bilstm_right(*a)), "h_n and c_n are swapped"),
    "pads hold state": (lambda *a: (lambda o, s: (o + (o == 0) * torch.cat(
        [s[0][0], s[0][1]], -1)[:, None], s))(*bilstm_right(*a)), "outputs is wrong"),
}

WRONG_STACKED = {
    **shared("stacked_bilstm"),
    "no dropout": (lambda x, L, layers, d: stacked_loop(x, L, layers, lambda t: t), "dropout was never called"),
    "dropout on input": (lambda x, L, layers, d: stacked_loop(d(x), L, layers, lambda t: t),
                         "applied to the input x"),
    "2 entries of h_n": (lambda *a: (lambda o, s: (o, (s[0][2:], s[1][2:])))(*stacked_loop(*a)),
                         "one entry per layer and direction: 4"),
}


@pytest.mark.parametrize("name", list(WRONG_REVERSE))
def test_reverse_padded_rejects_wrong_code(name):
    fn, diagnosis = WRONG_REVERSE[name]
    assert_rejected(check_reverse_padded, fn, diagnosis, "reverse_padded")


@pytest.mark.parametrize("name", list(WRONG_BILSTM))
def test_bilstm_rejects_wrong_code(name):
    fn, diagnosis = WRONG_BILSTM[name]
    assert_rejected(check_bilstm, fn, diagnosis, "bilstm")


@pytest.mark.parametrize("name", list(WRONG_STACKED))
def test_stacked_rejects_wrong_code(name):
    fn, diagnosis = WRONG_STACKED[name]
    assert_rejected(check_stacked_bilstm, fn, diagnosis, "stacked_bilstm")


def test_visible_cases_also_catch_the_named_mistakes():
    for table, check in ((WRONG_REVERSE, check_reverse_padded), (WRONG_BILSTM, check_bilstm),
                         (WRONG_STACKED, check_stacked_bilstm)):
        for name, (fn, diagnosis) in table.items():
            if name in ("float32",):
                continue
            with pytest.raises(CheckFailed, match=None) as info:
                print(name)
                check(fn)
            assert diagnosis in str(info.value), (name, str(info.value))
