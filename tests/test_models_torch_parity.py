"""The behaviours PyTorch's own tests check on its recurrent modules (test_nn.py
RNN/LSTM/GRU tests, and test_modules.py driven by module_db's sample and error
inputs), checked here on the reference models against torch.nn itself:
unbatched input, empty batches, non-contiguous tensors, projections (LSTMP),
pickling and copies, dtype/device conversion, weight reparametrisation and the
exception TYPES of bad input (the messages are our own, and richer).

Second-order and batched (vmap) gradients are in test_models_higher_order.py.
"""
from __future__ import annotations

import copy
import io
import itertools
import pickle

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

import rnncourse

F64 = torch.float64
LAYERS = ["RNN", "LSTM", "GRU"]
CELLS = ["RNNCell", "LSTMCell", "GRUCell"]


def pair(name, *args, seed=0, dtype=F64, **kw):
    """A torch.nn module and the reference one with the same weights."""
    torch.manual_seed(seed)
    tnn = getattr(nn, name)(*args, **kw).to(dtype)
    ref = getattr(rnncourse, name)(*args, **kw).to(dtype)
    ref.load_state_dict(tnn.state_dict(), strict=True)
    return tnn, ref


def flat(out):
    """Every tensor of a (nested) module output, in order."""
    if isinstance(out, torch.Tensor):
        return [out]
    if hasattr(out, "data") and hasattr(out, "batch_sizes"):  # PackedSequence
        return [out.data]
    return [t for o in out for t in flat(o)]


def assert_same(got, want, tol=1e-10):
    got, want = flat(got), flat(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        assert (g - w).abs().max().item() <= tol if g.numel() else True


def forward_backward(model, args):
    """Outputs and the gradients of (inputs, parameters) for a fixed loss."""
    model.zero_grad(set_to_none=True)
    out = model(*args)
    loss = sum((t.sin() * (k + 1)).sum() for k, t in enumerate(flat(out)))
    leaves = [a for a in flat(args) if a.requires_grad] + list(model.parameters())
    return out, torch.autograd.grad(loss, leaves, allow_unused=True)


def leaf(*shape, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, dtype=F64, generator=g).requires_grad_()


# -- module_db's sample inputs: unbatched input, every flag -----------------------

SAMPLE_FLAGS = list(itertools.product([False, True], [False, True], [False, True]))


@pytest.mark.parametrize("bias,batch_first,bidir", SAMPLE_FLAGS)
@pytest.mark.parametrize("name,extra", [("RNN", {"nonlinearity": "relu"}), ("RNN", {}),
                                        ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 2})])
@pytest.mark.parametrize("with_state", [False, True])
def test_unbatched_input_matches_torch_and_a_batch_of_one(name, extra, bias, batch_first, bidir,
                                                          with_state):
    tnn, ref = pair(name, 2, 3, num_layers=2, bias=bias, batch_first=batch_first,
                    bidirectional=bidir, **extra)
    LD, P = (4 if bidir else 2), extra.get("proj_size") or 3
    args = [leaf(3, 2)]
    if with_state:
        args.append((leaf(LD, P, seed=2), leaf(LD, 3, seed=3)) if name == "LSTM" else leaf(LD, 3, seed=2))
    got, got_grads = forward_backward(ref, args)
    want, want_grads = forward_backward(tnn, args)
    assert_same(got, want)
    assert_same(got_grads, want_grads)
    # module_db's reference: the same as a batch of one, squeezed.
    bdim = 0 if batch_first else 1
    batched = [args[0].unsqueeze(bdim)]
    if with_state:
        batched.append(tuple(s.unsqueeze(1) for s in args[1]) if name == "LSTM" else args[1].unsqueeze(1))
    out1, state1 = ref(*batched)
    out, state = got
    assert_same(out, out1.squeeze(bdim))
    assert_same(state, [s.squeeze(1) for s in flat(state1)])


@pytest.mark.parametrize("name,extra", [("RNNCell", {}), ("RNNCell", {"nonlinearity": "relu"}),
                                        ("GRUCell", {}), ("LSTMCell", {})])
@pytest.mark.parametrize("bias", [True, False])
def test_cells_unbatched_input(name, extra, bias):
    tnn, ref = pair(name, 5, 10, bias=bias, **extra)
    state = (leaf(10, seed=2), leaf(10, seed=3)) if name == "LSTMCell" else leaf(10, seed=2)
    got, got_grads = forward_backward(ref, [leaf(5), state])
    want, want_grads = forward_backward(tnn, [leaf(5), state])
    assert_same(got, want)
    assert_same(got_grads, want_grads)


# -- empty batches and empty states (test_nn: test_RNN_input_size_zero, zero hidden size) --

@pytest.mark.parametrize("name", LAYERS)
@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("bidir", [False, True])
def test_empty_batch_gives_empty_outputs(name, batch_first, bidir):
    tnn, ref = pair(name, 3, 4, num_layers=2, batch_first=batch_first, bidirectional=bidir)
    x = torch.zeros((0, 5, 3) if batch_first else (5, 0, 3), dtype=F64, requires_grad=True)
    got, want = ref(x), tnn(x)
    assert [t.shape for t in flat(got)] == [t.shape for t in flat(want)]
    flat(got)[0].sum().backward()  # and the backward runs
    assert x.grad.shape == x.shape


def test_empty_batch_lstm_with_projection_and_state():
    tnn, ref = pair("LSTM", 3, 4, proj_size=2)
    hx = (torch.zeros(1, 0, 2, dtype=F64), torch.zeros(1, 0, 4, dtype=F64))
    x = torch.zeros(5, 0, 3, dtype=F64)
    assert [t.shape for t in flat(ref(x, hx))] == [t.shape for t in flat(tnn(x, hx))]


@pytest.mark.parametrize("name,extra", [("RNNCell", {"nonlinearity": "relu"}), ("RNNCell", {}),
                                        ("GRUCell", {}), ("LSTMCell", {})])
def test_cells_zero_sizes(name, extra):
    for I, H, B in [(4, 0, 3), (0, 4, 3), (4, 5, 0)]:
        tnn, ref = pair(name, I, H, **extra)
        x = torch.randn(B, I, dtype=F64)
        state = torch.randn(B, H, dtype=F64)
        hx = (state, state) if name == "LSTMCell" else state
        assert_same(ref(x, hx), tnn(x, hx))


# -- non-contiguous tensors (test_modules: test_non_contiguous_tensors) -------------

def spread(t):
    """The same values in a non-contiguous tensor (every other element of a bigger one)."""
    big = torch.zeros(*t.shape[:-1], 2 * t.shape[-1], dtype=t.dtype)
    big[..., ::2] = t.detach()
    return big[..., ::2].requires_grad_(t.requires_grad)


@pytest.mark.parametrize("name,extra", [("RNN", {}), ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 2})])
@pytest.mark.parametrize("batch_first", [False, True])
def test_non_contiguous_input_state_and_output_gradient(name, extra, batch_first):
    tnn, ref = pair(name, 3, 4, num_layers=2, bidirectional=True, batch_first=batch_first, **extra)
    P = extra.get("proj_size") or 4
    x = leaf(5, 2, 3).transpose(0, 1).detach().requires_grad_()  # non-contiguous (2, 5, 3)
    if not batch_first:
        x = spread(leaf(5, 2, 3))
    h = spread(leaf(4, 2, P, seed=2))
    hx = (h, spread(leaf(4, 2, 4, seed=3))) if name == "LSTM" else h
    results = []
    for model in (ref, tnn):
        out, _ = model(x, hx)
        grad_out = spread(torch.ones_like(out).cumsum(-1))  # a non-contiguous output gradient
        results.append([out] + list(torch.autograd.grad(out, [x] + flat(hx), grad_out)))
    assert not x.is_contiguous() and not h.is_contiguous()
    assert_same(results[0], results[1])


# -- LSTM with projections (LSTMP) -------------------------------------------------

PROJ_GRID = list(itertools.product([1, 2], [False, True], [False, True], [True, False],
                                   ["batched", "packed"]))


@pytest.mark.parametrize("layers,bidir,batch_first,bias,inp", PROJ_GRID, ids=lambda v: str(v))
def test_lstm_projection_matches_torch(layers, bidir, batch_first, bias, inp):
    tnn, ref = pair("LSTM", 4, 6, proj_size=3, num_layers=layers, bidirectional=bidir,
                    batch_first=batch_first, bias=bias)
    LD = layers * (2 if bidir else 1)
    x = leaf(*((3, 5, 4) if batch_first else (5, 3, 4)))
    hx = (leaf(LD, 3, 3, seed=2), leaf(LD, 3, 6, seed=3))
    if inp == "packed":
        x = pack_padded_sequence(x, torch.tensor([2, 5, 3]), batch_first=batch_first,
                                 enforce_sorted=False)
    got, got_grads = forward_backward(ref, [x, hx])
    want, want_grads = forward_backward(tnn, [x, hx])
    assert_same(got, want)
    assert_same(got_grads, want_grads)
    out, (h_n, c_n) = got
    assert h_n.shape == (LD, 3, 3) and c_n.shape == (LD, 3, 6)


def test_lstm_projection_parameters_state_dict_and_repr():
    torch.manual_seed(5)
    tnn = nn.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3)
    torch.manual_seed(5)
    ref = rnncourse.LSTM(4, 6, num_layers=2, bidirectional=True, proj_size=3)
    assert [(n, p.shape) for n, p in ref.named_parameters()] == \
        [(n, p.shape) for n, p in tnn.named_parameters()]
    assert all(torch.equal(p, q) for p, q in zip(ref.parameters(), tnn.parameters()))
    assert ref.weight_hr_l1_reverse.shape == (3, 6) and ref.weight_ih_l1.shape == (24, 6)
    tnn.load_state_dict(ref.state_dict(), strict=True)
    ref.load_state_dict(tnn.state_dict(), strict=True)
    assert repr(ref) == repr(tnn)
    assert ref._flat_weights_names == tnn._flat_weights_names


@pytest.mark.parametrize("batch_first", [False, True])
def test_lstm_projection_gradcheck(batch_first):
    torch.manual_seed(0)
    model = rnncourse.LSTM(3, 4, proj_size=2, num_layers=2, bidirectional=True,
                           batch_first=batch_first).double()
    x = leaf(2, 3, 3) if batch_first else leaf(3, 2, 3)  # B = 2, T = 3
    h0, c0 = leaf(4, 2, 2, seed=2), leaf(4, 2, 4, seed=3)
    assert torch.autograd.gradcheck(lambda x, h, c: model(x, (h, c))[0], (x, h0, c0),
                                     check_batched_grad=True)


def test_zero_initial_state_equals_none():
    # test_nn: test_rnn_initial_hidden_state / test_projections_lstm_initial_hidden_state
    for name, kw in [("RNN", {}), ("GRU", {}), ("LSTM", {}), ("LSTM", {"proj_size": 10})]:
        model = getattr(rnncourse, name)(30, 20, 2, **kw)
        x = torch.randn(10, 32, 30)
        h = torch.zeros(2, 32, kw.get("proj_size", 20))
        hx = (h, torch.zeros(2, 32, 20)) if name == "LSTM" else h
        assert_same(model(x, hx), model(x), tol=0)


# -- exception types: torch.nn's, whatever the wording -------------------------------

def both_raise(make, call=None):
    """The reference raises an instance of the exception type torch.nn raises."""
    errors = []
    for lib in (nn, rnncourse):
        try:
            obj = make(lib)
            if call is not None:
                call(obj)
        except Exception as e:  # noqa: BLE001 - the type is what is compared
            errors.append(e)
        else:
            errors.append(None)
    torch_err, ref_err = errors
    assert torch_err is not None, "torch.nn accepts this; the case is wrong"
    assert isinstance(ref_err, type(torch_err)), \
        f"torch.nn raises {type(torch_err).__name__}, rnncourse {type(ref_err).__name__}: {ref_err}"


CONSTRUCTOR_ERRORS = [  # module_db error inputs and test_nn argument checks
    ("RNN", (10, 0, 1), {}), ("GRU", (10, 10, 0), {}), ("LSTM", (3, 5), {"bias": 0}),
    ("RNN", (3, 5), {"bias": "True"}), ("GRU", (3, 5), {"batch_first": 1}),
    ("LSTM", (3, 5), {"batch_first": "False"}), ("RNN", (3.0, 5), {}), ("GRU", ("10", 5), {}),
    ("LSTM", (0, 5), {}), ("RNN", (-1, 5), {}), ("GRU", (3, 5.0), {}),
    ("RNN", (3, 5), {"num_layers": 2.0}), ("GRU", (3, 5), {"dropout": 1.5}),
    ("RNN", (3, 5), {"nonlinearity": "garbage"}),
    ("RNN", (3, 5), {"proj_size": 2}), ("GRU", (3, 5), {"proj_size": 2}),
    ("LSTM", (3, 5), {"proj_size": -1}), ("LSTM", (3, 5), {"proj_size": 5}),
    ("LSTM", (3, 5), {"proj_size": 2.0}),
    ("RNNCell", (3, -1), {}), ("GRUCell", (3, 2.0), {}), ("LSTMCell", ("3", 2), {}),
]


@pytest.mark.parametrize("name,args,kw", CONSTRUCTOR_ERRORS, ids=str)
def test_constructor_error_types(name, args, kw):
    both_raise(lambda lib: getattr(lib, name)(*args, **kw))


def z(*shape, dtype=torch.float32):
    return torch.zeros(*shape, dtype=dtype)


FORWARD_ERRORS = [  # (constructor, forward arguments)
    # module_db: cells
    (("RNNCell", 10, 20), (z(3, 11), z(3, 20))), (("RNNCell", 10, 20), (z(3, 10), z(3, 21))),
    (("GRUCell", 10, 20), (z(3, 10), z(5, 20))), (("GRUCell", 10, 20), (z(3, 10), z(3, 1, 1, 20))),
    (("RNNCell", 10, 20, True, "relu"), (z(3, 10), z(3, 21))),
    (("LSTMCell", 10, 20), (z(3, 11), (z(3, 20), z(3, 20)))),
    (("LSTMCell", 10, 20), (z(3, 10), (z(3, 21), z(3, 21)))),
    (("LSTMCell", 10, 20), (z(3, 10), (z(5, 20), z(5, 20)))),
    (("LSTMCell", 10, 20), (z(3, 10), (z(3, 1, 1, 20), z(3, 1, 1, 20)))),
    (("GRUCell", 10, 20), (z(3, 10, dtype=F64),)), (("RNNCell", 10, 20), (z(3, 10), z(3, 20, dtype=F64))),
    (("LSTMCell", 10, 20), (z(3, 2, 10),)),
    # module_db: layers, input dtype not the weights'
    (("RNN", 3, 5), (z(2, 4, 3, dtype=F64),)), (("GRU", 3, 5), (z(2, 4, 3, dtype=F64),)),
    (("LSTM", 3, 5), (z(2, 4, 3, dtype=F64),)),
    # test_nn: test_rnn_args_check, test_rnn_proj_args_check
    (("RNN", 3, 5, 2), (z(4, 2, 4),)), (("GRU", 3, 5, 2), (z(4, 2, 3), z(2, 3, 5))),
    (("GRU", 3, 5, 2), (z(4, 2, 3), z(3, 2, 5))), (("RNN", 3, 5, 2), (z(4, 2, 3), z(2, 2, 6))),
    (("LSTM", 3, 5, 2), (z(4, 2, 3), (z(2, 2, 5), z(2, 3, 5)))),
    (("LSTM", 3, 5, 2), (z(4, 2, 3), (z(1, 2, 5), z(2, 2, 5)))),
    (("LSTM", 3, 5, 1, True, False, 0.0, False, 2), (z(4, 2, 3), (z(1, 2, 5), z(1, 2, 5)))),
    (("LSTM", 3, 5, 1, True, False, 0.0, False, 2), (z(4, 2, 3), (z(1, 2, 2), z(1, 2, 2)))),
    # wrong number of dimensions, states of the wrong rank, empty sequence, hx type
    (("RNN", 3, 5), (z(3),)), (("LSTM", 3, 5), (z(2, 2, 2, 3),)), (("GRU", 3, 5), (z(4, 2, 3), z(2, 5))),
    (("LSTM", 3, 5), (z(4, 2, 3), (z(2, 5), z(2, 5)))), (("RNN", 3, 5), (z(4, 3), z(1, 1, 5))),
    (("LSTM", 3, 5), (z(0, 2, 3),)), (("GRU", 3, 5), (z(4, 2, 3), z(1, 2, 5, dtype=F64))),
]


@pytest.mark.parametrize("cons,args", FORWARD_ERRORS, ids=lambda v: str(v)[:40])
def test_forward_error_types(cons, args):
    name, *cargs = cons
    both_raise(lambda lib: getattr(lib, name)(*cargs), lambda m: m(*args))


# -- module API: copies, pickling, conversion, factory kwargs, reparametrisation ----------

MODULES = [("RNN", (3, 4), {"num_layers": 2, "nonlinearity": "relu"}),
           ("GRU", (3, 4), {"bidirectional": True}), ("LSTM", (3, 4), {"num_layers": 2}),
           ("LSTM", (3, 4), {"proj_size": 2, "bidirectional": True}),
           ("RNNCell", (3, 4), {}), ("GRUCell", (3, 4), {}), ("LSTMCell", (3, 4), {})]


def sample(name):
    return torch.randn(5, 2, 3) if name in LAYERS else torch.randn(2, 3)


@pytest.mark.parametrize("name,args,kw", MODULES, ids=str)
def test_deepcopy_pickle_and_torch_save(name, args, kw):
    model = getattr(rnncourse, name)(*args, **kw)
    x = sample(name)
    want = model(x)
    buf = io.BytesIO()
    torch.save(model, buf)
    buf.seek(0)
    for other in (copy.deepcopy(model), pickle.loads(pickle.dumps(model)),
                  torch.load(buf, weights_only=False)):
        assert type(other) is type(model) and repr(other) == repr(model)
        assert_same(other(x), want, tol=0)


@pytest.mark.parametrize("name,args,kw", MODULES, ids=str)
def test_to_dtype_factory_kwargs_meta_and_to_empty(name, args, kw):
    cls = getattr(rnncourse, name)
    model = cls(*args, **kw).to(F64)
    assert all(p.dtype == F64 for p in model.parameters())
    assert flat(model(sample(name).to(F64)))[0].dtype == F64
    assert flat(model.float()(sample(name)))[0].dtype == torch.float32
    made = cls(*args, **kw, dtype=F64)
    assert all(p.dtype == F64 for p in made.parameters())
    meta = cls(*args, **kw, device="meta")
    with torch.device("meta"):
        ctx = cls(*args, **kw)
    for m in (meta, ctx):
        assert all(p.is_meta for p in m.parameters())
    meta.to_empty(device="cpu")
    meta.reset_parameters()
    assert flat(meta(sample(name)))[0].device.type == "cpu"


@pytest.mark.parametrize("kw,count", [({}, 4), ({"proj_size": 16}, 5)])
def test_weight_norm_on_a_recurrent_weight(kw, count):
    # test_nn: test_rnn_weight_norm. _flat_weights follows the reparametrisation.
    name = "weight_hr_l0" if kw else "weight_ih_l0"
    model = rnncourse.LSTM(32, 32, **kw)
    x = torch.randn(3, 2, 32)
    want = model(x)[0]
    with pytest.warns(FutureWarning):
        model = nn.utils.weight_norm(model, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in model._flat_weights) == count - 1
    assert_same(model(x)[0], want, tol=1e-5)
    model = nn.utils.remove_weight_norm(model, name=name)
    assert sum(isinstance(p, nn.Parameter) for p in model._flat_weights) == count
    assert set(model._parameters) == set(model._flat_weights_names)
    model.flatten_parameters()  # a no-op, present for drop-in code


def test_parametrize_a_recurrent_weight():
    tnn, ref = pair("GRU", 3, 4, dtype=torch.float32)
    for m in (tnn, ref):
        nn.utils.parametrize.register_parametrization(m, "weight_hh_l0", nn.Tanh())
    x = torch.randn(5, 2, 3)
    assert_same(ref(x), tnn(x), tol=1e-6)


def test_backward_twice_with_retained_graph_gives_the_same_gradients():
    # test_nn: test_rnn_retain_variables
    model = rnncourse.LSTM(10, 20, num_layers=2)
    x = torch.randn(5, 6, 10, requires_grad=True)
    out = model(x)[0].sum()
    grads = []
    for _ in range(3):
        model.zero_grad()
        x.grad = None
        out.backward(retain_graph=True)
        grads.append([x.grad.clone()] + [p.grad.clone() for p in model.parameters()])
    for g in grads[1:]:
        assert_same(g, grads[0], tol=0)


def test_lstm_cell_backward_through_one_output():
    # test_nn: test_lstmcell_backward_only_one_output_grad
    cell = rnncourse.LSTMCell(2, 3).double()
    for k in range(2):
        x = torch.randn(1, 2, dtype=F64, requires_grad=True)
        cell(x)[k].sum().backward()
        assert x.grad is not None and x.grad.abs().sum() > 0


def test_rnn_nonlinearity_as_fourth_positional_argument():
    # test_nn: test_RNN_nonlinearity_passed_as_arg
    rnn = rnncourse.RNN(2, 3, 1, "relu")
    assert (rnn.input_size, rnn.hidden_size, rnn.num_layers, rnn.nonlinearity) == (2, 3, 1, "relu")


def test_dropout_between_layers_scales_survivors_like_torch():
    # test_nn: test_RNN_dropout. Ones everywhere: layer 0 outputs 10 per unit, dropout
    # zeroes some and scales the rest by 1/(1-p), layer 1 sums them.
    p = 0.2
    rnn = rnncourse.RNN(10, 1000, 2, bias=False, dropout=p, nonlinearity="relu")
    with torch.no_grad():
        for name, w in rnn.named_parameters():
            w.fill_(1.0 if name.startswith("weight_ih") else 0.0)  # no recurrence
    x = torch.ones(1, 1, 10)
    rnn.train()
    out, _ = rnn(x)
    kept = out[0, 0, 0].item() / (10 / (1 - p))  # how many of the 1000 units survived
    assert out.unique().numel() == 1 and abs(kept - 1000 * (1 - p)) < 80
    rnn.eval()
    assert torch.equal(rnn(x)[0], torch.full((1, 1, 1000), 10.0 * 1000))
    assert rnncourse.RNN(1, 10).nonlinearity == "tanh"  # test_RNN_nonlinearity
