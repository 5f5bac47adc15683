"""rnncourse.attention: additive, dot and general attention over padded encoder
states, self-attention, and the attention decoder step.

What must hold: masked positions get exactly zero weight, a row that is all
padding gives zero weights and a zero context (no NaN), weights sum to one over
the real positions, a padded batch gives each sequence what it gets alone,
gradients pass gradcheck and stay finite, and it all runs in any float dtype
and on any device (the meta device here stands in for a GPU).
"""
import pytest
import torch

from rnncourse import attention as A
from rnncourse.guard import REFERENCE_MODELS, BlockedError, blocked
from rnncourse.validation import ShapeError

B, S, HQ, HK, AT = 3, 7, 5, 4, 6
LENGTHS = [7, 3, 1]


def _inputs(dtype=torch.float64, device="cpu", lengths=LENGTHS, seed=0, square=False):
    g = torch.Generator().manual_seed(seed)
    hq = HK if square else HQ
    q = torch.randn(len(lengths), hq, generator=g, dtype=torch.float64)
    k = torch.randn(len(lengths), S, HK, generator=g, dtype=torch.float64)
    mask = torch.arange(S) < torch.tensor(lengths)[:, None]  # (B, S)
    params = {"weight_q": torch.randn(AT, hq, generator=g, dtype=torch.float64),
              "weight_k": torch.randn(AT, HK, generator=g, dtype=torch.float64),
              "v": torch.randn(AT, generator=g, dtype=torch.float64),
              "weight": torch.randn(hq, HK, generator=g, dtype=torch.float64)}
    cast = {n: p.to(device=device, dtype=dtype) for n, p in params.items()}
    return q.to(device=device, dtype=dtype), k.to(device=device, dtype=dtype), mask.to(device), cast


def _run(kind, q, k, mask, p):
    if kind == "additive":
        return A.additive_attention(q, k, mask, p["weight_q"], p["weight_k"], p["v"])
    if kind == "dot":
        return A.dot_attention(q, k, mask)
    return A.general_attention(q, k, mask, p["weight"])


def _by_hand(kind, q, k, mask, p):
    """The equations written out with loops over batch and positions."""
    Bn, Sn, _ = k.shape
    context, weights = torch.zeros(Bn, k.shape[2], dtype=k.dtype), torch.zeros(Bn, Sn, dtype=k.dtype)
    for b in range(Bn):
        real = [j for j in range(Sn) if mask[b, j]]
        if not real:
            continue
        e = []
        for j in real:
            if kind == "additive":
                e.append(p["v"] @ torch.tanh(p["weight_q"] @ q[b] + p["weight_k"] @ k[b, j]))
            elif kind == "dot":
                e.append(q[b] @ k[b, j])
            else:
                e.append(q[b] @ p["weight"] @ k[b, j])
        a = torch.softmax(torch.stack(e), dim=0)
        for a_j, j in zip(a, real):
            weights[b, j] = a_j
            context[b] += a_j * k[b, j]
    return context, weights


KINDS = ["additive", "dot", "general"]


@pytest.mark.parametrize("kind", KINDS)
def test_matches_the_equations_written_out(kind):
    q, k, mask, p = _inputs(square=kind == "dot")
    context, weights = _run(kind, q, k, mask, p)
    ref_c, ref_w = _by_hand(kind, q, k, mask, p)
    assert context.shape == (B, HK) and weights.shape == (B, S)
    torch.testing.assert_close(weights, ref_w, atol=1e-12, rtol=0)
    torch.testing.assert_close(context, ref_c, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_padding_gets_exactly_zero_weight_and_weights_sum_to_one(kind):
    q, k, mask, p = _inputs(square=kind == "dot")
    k = k.masked_fill(~mask[..., None], 1e4)  # huge values on padding must not leak in
    _, weights = _run(kind, q, k, mask, p)
    assert torch.all(weights[~mask] == 0)
    torch.testing.assert_close(weights.sum(-1), torch.ones(B, dtype=weights.dtype))


@pytest.mark.parametrize("kind", KINDS)
def test_a_row_of_padding_only_gives_zeros_not_nan(kind):
    q, k, mask, p = _inputs(square=kind == "dot", lengths=[0, 4, 0])
    q.requires_grad_(True)
    k.requires_grad_(True)
    context, weights = _run(kind, q, k, mask, p)
    assert torch.isfinite(context).all() and torch.isfinite(weights).all()
    assert torch.all(weights[[0, 2]] == 0) and torch.all(context[[0, 2]] == 0)
    (context.sum() + (weights * torch.arange(S)).sum()).backward()
    assert torch.isfinite(q.grad).all() and torch.isfinite(k.grad).all()
    assert torch.all(q.grad[[0, 2]] == 0)


@pytest.mark.parametrize("kind", KINDS)
def test_a_batch_gives_each_sequence_what_it_gets_alone(kind):
    q, k, mask, p = _inputs(square=kind == "dot")
    context, weights = _run(kind, q, k, mask, p)
    for b, L in enumerate(LENGTHS):
        alone_c, alone_w = _run(kind, q[b:b + 1], k[b:b + 1, :L], mask[b:b + 1, :L], p)
        torch.testing.assert_close(context[b:b + 1], alone_c, atol=1e-12, rtol=0)
        torch.testing.assert_close(weights[b:b + 1, :L], alone_w, atol=1e-12, rtol=0)


@pytest.mark.parametrize("kind", KINDS)
def test_gradcheck(kind):
    q, k, mask, p = _inputs(square=kind == "dot", lengths=[7, 2, 0])
    names = {"additive": ["weight_q", "weight_k", "v"], "dot": [], "general": ["weight"]}[kind]

    def f(q, k, *ws):
        return _run(kind, q, k, mask, {**p, **dict(zip(names, ws))})

    args = [t.clone().requires_grad_(True) for t in [q, k] + [p[n] for n in names]]
    assert torch.autograd.gradcheck(f, args)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
def test_low_precision_keeps_the_padding_at_zero(kind, dtype):
    q, k, mask, p = _inputs(dtype=dtype, square=kind == "dot")
    context, weights = _run(kind, q, k, mask, p)
    assert context.dtype == weights.dtype == dtype
    assert torch.all(weights[~mask] == 0) and torch.isfinite(context).all()
    ref_c, ref_w = _run(kind, *_inputs(square=kind == "dot"))
    assert (weights.double() - ref_w).abs().max() < 0.05


@pytest.mark.parametrize("kind", KINDS)
def test_runs_on_another_device(kind):
    q, k, mask, p = _inputs(dtype=torch.float32, device="meta", square=kind == "dot")
    context, weights = _run(kind, q, k, mask, p)
    assert context.device.type == weights.device.type == "meta"
    assert context.shape == (B, HK) and weights.shape == (B, S)


def test_modules_hold_the_parameters_of_the_functions():
    add = A.AdditiveAttention(HQ, HK, AT, dtype=torch.float64)
    gen = A.GeneralAttention(HQ, HK, dtype=torch.float64)
    assert {n: tuple(t.shape) for n, t in add.named_parameters()} == {
        "weight_q": (AT, HQ), "weight_k": (AT, HK), "v": (AT,)}
    assert {n: tuple(t.shape) for n, t in gen.named_parameters()} == {"weight": (HQ, HK)}
    assert not list(A.DotAttention().parameters())
    q, k, mask, _ = _inputs()
    torch.testing.assert_close(add(q, k, mask)[0],
                               A.additive_attention(q, k, mask, add.weight_q, add.weight_k, add.v)[0])
    torch.testing.assert_close(gen(q, k, mask)[1], A.general_attention(q, k, mask, gen.weight)[1])
    with pytest.raises(ValueError, match="query_size == key_size"):
        A.make_attention("dot", HQ, HK)
    with pytest.raises(ValueError, match="kind"):
        A.make_attention("cosine", HQ, HK)


def test_bad_input_names_the_argument():
    q, k, mask, p = _inputs()
    with pytest.raises(TypeError, match="mask must be a bool"):
        A.general_attention(q, k, mask.long(), p["weight"])
    with pytest.raises(ShapeError, match=r"mask must have shape \(B, S\)"):
        A.general_attention(q, k, mask[:, :3], p["weight"])
    with pytest.raises(ShapeError, match="batch size"):
        A.general_attention(q[:2], k, mask, p["weight"])
    with pytest.raises(ShapeError, match=r"weight must have shape \(Hq, Hk\)"):
        A.general_attention(q, k, mask, p["weight"].T)
    with pytest.raises(ShapeError, match="one size"):
        A.dot_attention(q, k, mask)
    with pytest.raises(ShapeError, match=r"keys must have shape \(B, S, Hk\)"):
        A.dot_attention(q, k[:, 0], mask)
    with pytest.raises(ValueError, match="dtype"):
        A.general_attention(q.float(), k, mask, p["weight"])


def test_blocked_while_a_learner_is_checked():
    q, k, mask, p = _inputs()
    with blocked("masked_softmax", [REFERENCE_MODELS]):
        for kind in KINDS:
            with pytest.raises(BlockedError):
                _run(kind, q, k, mask, p)


def test_self_attention():
    g = torch.Generator().manual_seed(3)
    x = torch.randn(2, 6, 4, generator=g, dtype=torch.float64)
    mask = torch.arange(6) < torch.tensor([[6], [4]])
    y, w = A.self_attention(x, mask)
    assert y.shape == x.shape and w.shape == (2, 6, 6)
    assert torch.all(w[1][:, 4:] == 0)
    for b in range(2):
        for t in range(6):
            L = int(mask[b].sum())
            a = torch.softmax(x[b, :L] @ x[b, t] / 2.0, dim=0)
            torch.testing.assert_close(w[b, t, :L], a)
            torch.testing.assert_close(y[b, t], a @ x[b, :L])


# --- the decoder ---------------------------------------------------------------------

def _decoder(kind="additive", seed=0):
    torch.manual_seed(seed)
    return A.AttentionDecoder(9, 5, HQ, HK, attention=kind, attn_size=AT, dtype=torch.float64)


@pytest.mark.parametrize("kind", ["additive", "general"])
def test_decoder_step_is_the_cell_then_attention_with_the_new_state(kind):
    dec = _decoder(kind)
    _, k, mask, _ = _inputs()
    y = torch.tensor([1, 4, 8])
    s0 = torch.randn(B, HQ, dtype=torch.float64)
    logits, s1, w = dec.step(y, s0, k, mask)
    # the same step with torch's own GRUCell and the attention called by hand
    cell = torch.nn.GRUCell(5, HQ, dtype=torch.float64)
    cell.load_state_dict(dec.cell.state_dict())
    s_ref = cell(dec.embedding.weight[y], s0)
    c_ref, w_ref = dec.attention(s_ref, k, mask)
    z_ref = torch.cat([s_ref, c_ref], -1) @ dec.out.weight.T + dec.out.bias
    torch.testing.assert_close(s1, s_ref)
    torch.testing.assert_close(w, w_ref)
    torch.testing.assert_close(logits, z_ref)
    assert logits.shape == (B, 9) and torch.all(w[~mask] == 0)


def test_decoder_step_gradcheck_and_batch_equals_alone():
    dec = _decoder("additive")
    _, k, mask, _ = _inputs(lengths=[7, 3, 0])
    y = torch.tensor([1, 4, 8])
    s0 = torch.randn(B, HQ, dtype=torch.float64)

    def f(s, mem):
        return dec.step(y, s, mem, mask)

    assert torch.autograd.gradcheck(f, [s0.clone().requires_grad_(True), k.clone().requires_grad_(True)])
    logits, s1, w = dec.step(y, s0, k, mask)
    for b, L in enumerate([7, 3]):
        lb, sb, wb = dec.step(y[b:b + 1], s0[b:b + 1], k[b:b + 1, :L], mask[b:b + 1, :L])
        torch.testing.assert_close(logits[b:b + 1], lb)
        torch.testing.assert_close(w[b:b + 1, :L], wb)


def test_decoder_on_another_device_and_dtype():
    dec = A.AttentionDecoder(9, 5, HQ, HK, device="meta", dtype=torch.float32)
    _, k, mask, _ = _inputs(dtype=torch.float32, device="meta")
    logits, s, w = dec.step(torch.tensor([1, 2, 3], device="meta"), torch.zeros(B, HQ, device="meta"), k, mask)
    assert logits.device.type == "meta" and logits.dtype == torch.float32 and w.shape == (B, S)


def test_decoder_step_bad_input():
    dec = _decoder()
    _, k, mask, _ = _inputs()
    s0 = torch.zeros(B, HQ, dtype=torch.float64)
    with pytest.raises(ShapeError, match="y_prev"):
        dec.step(torch.tensor([[1], [2], [3]]), s0, k, mask)
    with pytest.raises(ShapeError, match=r"state must have shape \(B, H\)"):
        dec.step(torch.tensor([1, 2, 3]), s0[:, :2], k, mask)
    with pytest.raises(ShapeError, match="Hk"):
        dec.step(torch.tensor([1, 2, 3]), s0, k[..., :2], mask)


def test_decoder_step_is_blocked_on_its_own():
    dec = _decoder()
    _, k, mask, _ = _inputs()
    args = (torch.tensor([1, 2, 3]), torch.zeros(B, HQ, dtype=torch.float64), k, mask)
    with blocked("attention_decoder_step", [A.DECODER_STEP]):
        with pytest.raises(BlockedError, match="decoder step"):
            dec.step(*args)
        A.additive_attention(args[1], k, mask, dec.attention.weight_q, dec.attention.weight_k,
                             dec.attention.v)  # the attention itself stays usable
    dec.step(*args)  # and the block is lifted afterwards


@pytest.mark.parametrize("kind", KINDS)
def test_many_queries_at_once_equal_one_at_a_time(kind):
    q, k, mask, p = _inputs(square=kind == "dot", lengths=[7, 3, 0])
    g = torch.Generator().manual_seed(5)
    queries = torch.randn(B, 4, q.shape[1], generator=g, dtype=torch.float64)  # (B, T, Hq)
    context, weights = _run(kind, queries, k, mask, p)
    assert context.shape == (B, 4, HK) and weights.shape == (B, 4, S)
    for t in range(4):
        c_t, w_t = _run(kind, queries[:, t], k, mask, p)
        torch.testing.assert_close(context[:, t], c_t)
        torch.testing.assert_close(weights[:, t], w_t)


@pytest.mark.parametrize("kind", KINDS)
def test_decoder_forward_equals_stepping_and_seq2seq_decodes(kind):
    from rnncourse.seq2seq import Encoder, Seq2Seq
    torch.manual_seed(0)
    enc = Encoder(9, 5, HK, dtype=torch.float64)
    dec = A.AttentionDecoder(9, 5, HK, HK, attention=kind, attn_size=AT, dtype=torch.float64)
    model = Seq2Seq(enc, dec)
    src = torch.randint(3, 9, (B, S))
    lengths = torch.tensor(LENGTHS)
    tgt_in = torch.randint(3, 9, (B, 6))
    memory, mask, state = model.encode(src, lengths)
    assert state.shape == (B, HK)
    logits, last, weights = dec(tgt_in, state, memory, mask)
    s = state
    for t in range(6):
        z, s, w = dec.step(tgt_in[:, t], s, memory, mask)
        torch.testing.assert_close(logits[:, t], z)
        torch.testing.assert_close(weights[:, t], w)
    torch.testing.assert_close(last, s)
    out, att = model.greedy(src, lengths, 8)
    assert att.shape[0] == B and att.shape[2] == S and torch.all(att[1, :, 3:] == 0)
    beam = model.beam_search(src, lengths, 3, 8)
    greedy_again = model.beam_search(src, lengths, 1, 8)
    assert torch.equal(greedy_again.tokens[:, :out.tokens.shape[1]], out.tokens[:, :greedy_again.tokens.shape[1]])
    assert beam.tokens.shape[0] == B
