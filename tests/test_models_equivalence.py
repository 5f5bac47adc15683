"""The reference models against torch.nn: weights copied, float64, outputs,
final states and the gradients of every parameter, the input and the initial
state compared to 1e-10 over a grid of configurations."""
from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import rnncourse

# Pairwise-different sizes so that a transposed weight or a swapped axis cannot pass.
T, B, I, H = 5, 3, 4, 6
LENGTHS = [2, 5, 3]  # unsorted, one full-length sequence
TOL64 = 1e-10

KINDS = {  # name -> (torch.nn class, reference class, constructor kwargs)
    "rnn_tanh": (nn.RNN, rnncourse.RNN, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNN, rnncourse.RNN, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTM, rnncourse.LSTM, {}),
    "gru": (nn.GRU, rnncourse.GRU, {}),
}


def make_pair(kind, dtype=torch.float64, seed=0, **kw):
    tnn_cls, ref_cls, extra = KINDS[kind]
    torch.manual_seed(seed)
    tnn = tnn_cls(I, H, **extra, **kw).to(dtype)
    ref = ref_cls(I, H, **extra, **kw).to(dtype)
    ref.load_state_dict(tnn.state_dict(), strict=True)
    return tnn, ref


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


def run(model, x, state, packed, batch_first):
    """Forward + backward of a fixed non-linear loss; returns every tensor to compare."""
    x = x.detach().clone().requires_grad_(True)
    state = None if state is None else tuple(s.detach().clone().requires_grad_(True) for s in state)
    inp = x
    if packed:
        inp = pack_padded_sequence(x, torch.tensor(LENGTHS), batch_first=batch_first,
                                   enforce_sorted=False)
    hx = None if state is None else (state if len(state) == 2 else state[0])
    model.zero_grad(set_to_none=True)
    out, final = model(inp, hx)
    final = as_tuple(final)
    data = out.data if isinstance(out, PackedSequence) else out
    loss = (data.sin() * torch.arange(data.numel(), dtype=data.dtype).view_as(data).cos()).sum()
    loss = loss + sum((f ** 2 * (k + 1)).sum() for k, f in enumerate(final))
    loss.backward()
    grads = [x.grad] + ([] if state is None else [s.grad for s in state])
    grads += [p.grad for p in model.parameters()]
    return [data, *final], grads


def assert_close(got, want, tol, what):
    assert len(got) == len(want)
    for k, (g, w) in enumerate(zip(got, want)):
        assert g.shape == w.shape, f"{what}[{k}]: shape {tuple(g.shape)} vs {tuple(w.shape)}"
        err = (g - w).abs().max().item()
        assert err <= tol, f"{what}[{k}]: max error {err:.3g} > {tol}"


GRID = list(itertools.product(KINDS, [1, 2, 3], [False, True], [False, True], [True, False],
                              [False, True], ["batched", "unbatched", "packed"]))


@pytest.mark.parametrize("kind,layers,bidir,batch_first,bias,with_state,inp", GRID,
                         ids=lambda v: str(v))
def test_matches_torch_nn_float64(kind, layers, bidir, batch_first, bias, with_state, inp):
    tnn, ref = make_pair(kind, num_layers=layers, bidirectional=bidir,
                         batch_first=batch_first, bias=bias)
    gen = torch.Generator().manual_seed(1)
    D = 2 if bidir else 1
    if inp == "unbatched":
        x = torch.randn(T, I, generator=gen, dtype=torch.float64)
        state_shape = (layers * D, H)
    else:
        x = torch.randn((B, T, I) if batch_first else (T, B, I), generator=gen, dtype=torch.float64)
        state_shape = (layers * D, B, H)
    state = None
    if with_state:
        n = 2 if kind == "lstm" else 1
        state = tuple(torch.randn(state_shape, generator=gen, dtype=torch.float64) for _ in range(n))
    packed = inp == "packed"
    want_vals, want_grads = run(tnn, x, state, packed, batch_first)
    got_vals, got_grads = run(ref, x, state, packed, batch_first)
    assert_close(got_vals, want_vals, TOL64, "outputs/final state")
    assert_close(got_grads, want_grads, TOL64, "gradients (input, state, parameters)")


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_between_layers_in_eval_mode_is_identity(kind):
    tnn, ref = make_pair(kind, num_layers=3, dropout=0.5, bidirectional=True)
    tnn.eval(), ref.eval()
    x = torch.randn(T, B, I, dtype=torch.float64)
    got, gg = run(ref, x, None, False, False)
    want, wg = run(tnn, x, None, False, False)
    assert_close(got, want, TOL64, "outputs")
    assert_close(gg, wg, TOL64, "gradients")


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_in_training_mode_drops_between_layers_only(kind):
    _, ref = make_pair(kind, num_layers=2, dropout=0.5)
    ref.train()
    x = torch.randn(T, B, I, dtype=torch.float64)
    torch.manual_seed(3)
    a, _ = ref(x)
    torch.manual_seed(4)
    b, _ = ref(x)
    assert not torch.allclose(a, b), "dropout > 0 in training mode must change the output"
    ref.eval()
    c, _ = ref(x)
    d, _ = ref(x)
    assert torch.equal(c, d)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("inp", ["batched", "packed"])
def test_matches_torch_nn_float32(kind, inp):
    tnn, ref = make_pair(kind, dtype=torch.float32, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I)
    want_vals, want_grads = run(tnn, x, None, inp == "packed", False)
    got_vals, got_grads = run(ref, x, None, inp == "packed", False)
    # float32 round-off over a few steps and two layers: measured ~1e-6.
    assert_close(got_vals, want_vals, 1e-5, "outputs")
    assert_close(got_grads, want_grads, 1e-4, "gradients")


CELLS = {
    "rnn_tanh": (nn.RNNCell, rnncourse.RNNCell, {"nonlinearity": "tanh"}),
    "rnn_relu": (nn.RNNCell, rnncourse.RNNCell, {"nonlinearity": "relu"}),
    "lstm": (nn.LSTMCell, rnncourse.LSTMCell, {}),
    "gru": (nn.GRUCell, rnncourse.GRUCell, {}),
}


@pytest.mark.parametrize("kind,bias,with_state,batched",
                         list(itertools.product(CELLS, [True, False], [False, True], [True, False])))
def test_cells_match_torch_nn(kind, bias, with_state, batched):
    tnn_cls, ref_cls, extra = CELLS[kind]
    torch.manual_seed(0)
    tnn = tnn_cls(I, H, bias=bias, **extra).double()
    ref = ref_cls(I, H, bias=bias, **extra).double()
    ref.load_state_dict(tnn.state_dict(), strict=True)
    shape = (B,) if batched else ()
    x0 = torch.randn(*shape, I, dtype=torch.float64)
    n = 2 if kind == "lstm" else 1
    s0 = [torch.randn(*shape, H, dtype=torch.float64) for _ in range(n)] if with_state else None

    def go(model):
        model.zero_grad(set_to_none=True)
        x = x0.clone().requires_grad_(True)
        s = None if s0 is None else [t.clone().requires_grad_(True) for t in s0]
        hx = None if s is None else (tuple(s) if n == 2 else s[0])
        out = as_tuple(model(x, hx))
        sum(((o * (k + 2)).tanh()).sum() for k, o in enumerate(out)).backward()
        grads = [x.grad] + ([] if s is None else [t.grad for t in s])
        return list(out), grads + [p.grad for p in model.parameters()]

    got, gg = go(ref)
    want, wg = go(tnn)
    assert_close(got, want, TOL64, "cell output")
    assert_close(gg, wg, TOL64, "cell gradients")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch_nn_on_cuda(kind):
    tnn, ref = make_pair(kind, num_layers=2, bidirectional=True)
    tnn, ref = tnn.cuda(), ref.cuda()
    x = torch.randn(T, B, I, dtype=torch.float64, device="cuda")
    a, ha = tnn(x)
    b, hb = ref(x)
    assert b.device.type == "cuda"
    assert_close([b, *as_tuple(hb)], [a, *as_tuple(ha)], 1e-8, "cuda outputs")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("lengths", [[5, 3, 2], [5, 5, 5], [1, 1, 1]])
def test_sorted_packed_input_without_permutation(kind, lengths):
    """enforce_sorted=True leaves sorted_indices None: the other code path."""
    tnn, ref = make_pair(kind, num_layers=2, bidirectional=True)
    x = torch.randn(T, B, I, dtype=torch.float64)
    packed = pack_padded_sequence(x, torch.tensor(lengths), enforce_sorted=True)
    assert packed.sorted_indices is None
    (a, ha), (b, hb) = tnn(packed), ref(packed)
    assert torch.equal(a.batch_sizes, b.batch_sizes) and b.sorted_indices is None
    assert_close([b.data, *as_tuple(hb)], [a.data, *as_tuple(ha)], TOL64, "sorted packed")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch_first", [False, True])
def test_non_contiguous_input(kind, batch_first):
    """Strided and permuted inputs (slices, transposes) give torch.nn's numbers."""
    tnn, ref = make_pair(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    big = torch.randn(T, B, 2 * I, dtype=torch.float64)
    for x in (big[..., ::2], big[..., 1:I + 1], torch.randn(B, I, T, dtype=torch.float64).permute(2, 0, 1)):
        assert not x.is_contiguous()
        want_vals, want_grads = run(tnn, x, None, False, batch_first)
        got_vals, got_grads = run(ref, x, None, False, batch_first)
        assert_close(got_vals, want_vals, TOL64, "outputs")
        assert_close(got_grads, want_grads, TOL64, "gradients")
