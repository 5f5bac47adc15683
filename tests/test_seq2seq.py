"""rnncourse.seq2seq (encoder, decoder, Seq2Seq) and rnncourse.decoding (greedy
and beam search): batch equals each sequence alone, decoding stops per row,
beam search equals greedy at width 1 and exhaustive search when nothing is pruned."""
import itertools
import math

import pytest
import torch

from rnncourse.data.seq2seq import BOS, EOS, PAD, collate, reversal_pairs
from rnncourse.decoding import beam_search, greedy_decode
from rnncourse.seq2seq import Decoder, Encoder, Seq2Seq


def toy_step(V, H=5, seed=0, sharp=3.0, dtype=torch.float64):
    """A little recurrent next-token model from plain ops: state h (N, H)."""
    g = torch.Generator().manual_seed(seed)
    E = torch.randn(V, H, generator=g, dtype=dtype)
    W = torch.randn(H, H, generator=g, dtype=dtype) / math.sqrt(H)
    O = torch.randn(H, V, generator=g, dtype=dtype) * sharp / math.sqrt(H)

    def step(y, h):
        h = torch.tanh(E[y] + h @ W)
        return h @ O, h
    return step


def drifting_step(V, eos, seed=0, H=5):
    """toy_step whose EOS logit grows with time at a rate set by the state: rows end at different steps."""
    inner = toy_step(V, H, seed)

    def step(y, state):
        h, clock = state[:, :H], state[:, H:]
        z, h = inner(y, h)
        z = z.clone()
        z[:, eos] += clock[:, 0] * (1 + clock[:, 1])
        return z, torch.cat([h, clock + torch.tensor([1.0, 0.0], dtype=clock.dtype)], 1)
    return step


def rows(s, i):
    return s.index_select(0, i)


def exhaustive(step, h0, V, max_len, eos, alpha):
    """Best normalised score over every sequence: ended by EOS, or max_len long without it."""
    best = (-math.inf, None)
    for n in range(1, max_len + 1):
        for seq in itertools.product(range(V), repeat=n):
            if eos in seq[:-1] or (n < max_len and seq[-1] != eos):
                continue
            h, y, total = h0, torch.tensor([BOS]), 0.0
            for tok in seq:
                z, h = step(y, h)
                total += float(torch.log_softmax(z, -1)[0, tok])
                y = torch.tensor([tok])
            score = total / n ** alpha
            if score > best[0]:
                best = (score, list(seq))
    return best


@pytest.mark.parametrize("alpha", [0.0, 0.7, 1.0])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_beam_search_covering_every_hypothesis_is_exhaustive_search(seed, alpha):
    V, max_len, eos = 4, 3, 2
    step = toy_step(V, seed=seed, sharp=1.5)
    h0 = torch.randn(1, 5, generator=torch.Generator().manual_seed(seed + 9), dtype=torch.float64)
    score, seq = exhaustive(step, h0, V, max_len, eos, alpha)
    out = beam_search(step, h0, rows, 1, V ** max_len, max_len, alpha=alpha, bos=BOS, eos=eos)
    assert out.tokens[0, :out.lengths[0]].tolist() == seq
    assert float(out.scores[0]) == pytest.approx(score, abs=1e-10)


@pytest.mark.parametrize("seed", range(6))
def test_beam_width_one_is_greedy(seed):
    V, B = 6, 7
    step = toy_step(V, seed=seed)
    h0 = torch.randn(B, 5, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    g = greedy_decode(step, h0, B, 9, bos=BOS, eos=EOS)
    b = beam_search(step, h0, rows, B, 1, 9, alpha=0.0, bos=BOS, eos=EOS)
    assert torch.equal(g.tokens, b.tokens) and torch.equal(g.lengths, b.lengths)
    assert torch.allclose(g.scores, b.scores)


def test_greedy_stops_each_row_at_its_own_eos():
    V, B = 5, 16
    step = drifting_step(V, EOS, seed=4)
    rate = torch.linspace(0, 2, B, dtype=torch.float64)
    h0 = torch.cat([torch.randn(B, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64),
                    torch.zeros(B, 1, dtype=torch.float64), rate[:, None]], 1)
    out = greedy_decode(step, h0, B, 12, bos=BOS, eos=EOS)
    assert len(set(out.lengths.tolist())) > 2, "the test needs rows that end at different steps"
    for b in range(B):
        n = int(out.lengths[b])
        row = out.tokens[b]
        assert (row[:n - 1] != EOS).all()
        if n < 12 or row[n - 1] == EOS:
            assert row[n - 1] == EOS
        assert (row[n:] == PAD).all()
        alone = greedy_decode(step, h0[b:b + 1], 1, 12, bos=BOS, eos=EOS)
        assert alone.tokens[0].tolist() == row[:alone.tokens.shape[1]].tolist()
        assert torch.allclose(alone.scores, out.scores[b:b + 1])
    assert out.tokens.shape[1] == int(out.lengths.max())


@pytest.mark.parametrize("K", [2, 3, 5])
def test_beam_search_of_a_batch_equals_each_source_alone(K):
    V, B = 6, 5
    step = toy_step(V, seed=7, sharp=1.0)
    h0 = torch.randn(B, 5, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = beam_search(step, h0, rows, B, K, 7, alpha=1.0)
    for b in range(B):
        alone = beam_search(step, h0[b:b + 1], rows, 1, K, 7, alpha=1.0)
        n = int(alone.lengths[0])
        assert out.tokens[b, :n].tolist() == alone.tokens[0, :n].tolist()
        assert int(out.lengths[b]) == n and torch.allclose(out.scores[b], alone.scores[0])
        assert (out.tokens[b, n:] == PAD).all()


def test_beam_search_keeps_a_finished_hypothesis_that_wins():
    # p(EOS) is 0.6 at the first step, then every continuation is spread thin:
    # the 1-token answer [EOS] must win, though it finished at step 1.
    V, eos = 5, 2

    def step(y, h):
        first = (h[:, 0] == 0)
        z = torch.where(first[:, None], torch.log(torch.tensor([0.1, 0.1, 0.6, 0.1, 0.1])),
                        torch.zeros(V))
        return z, h + 1
    out = beam_search(step, torch.zeros(1, 1), rows, 1, 3, 4, alpha=1.0, eos=eos)
    assert out.tokens[0].tolist() == [eos] and float(out.scores[0]) == pytest.approx(math.log(0.6))


def small_model(kind="GRU", bidirectional=False, dtype=torch.float64, V=13):
    torch.manual_seed(0)
    H = 6
    enc = Encoder(V, 5, H, kind=kind, bidirectional=bidirectional, dtype=dtype)
    dec = Decoder(V, 4, enc.output_size, kind=kind, dtype=dtype)
    return Seq2Seq(enc, dec)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_encoder_batch_equals_each_source_alone(kind, bidirectional):
    model = small_model(kind, bidirectional)
    batch = collate(reversal_pairs(5, 1, 7, generator=2))
    memory, state = model.encoder(batch.src, batch.src_lengths)
    D = 2 if bidirectional else 1
    assert memory.shape == (*batch.src.shape, D * 6)
    assert (memory[~batch.src_mask] == 0).all()
    for b in range(5):
        n = int(batch.src_lengths[b])
        m1, s1 = model.encoder(batch.src[b:b + 1, :n], batch.src_lengths[b:b + 1])
        assert torch.allclose(memory[b:b + 1, :n], m1, atol=1e-12)
        for s, t in zip((state,) if kind == "GRU" else state, (s1,) if kind == "GRU" else s1):
            assert torch.allclose(s[:, b:b + 1], t, atol=1e-12)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_teacher_forced_decoder_equals_stepping(kind):
    model = small_model(kind, True)
    batch = collate(reversal_pairs(4, 2, 6, generator=1))
    memory, mask, state = model.encode(batch.src, batch.src_lengths)
    whole, _, _ = model.decoder(batch.tgt_in, state, memory, mask)
    stepped = []
    for y in batch.tgt_in.unbind(1):
        z, state, w = model.decoder.step(y, state, memory, mask)
        assert w is None
        stepped.append(z)
    assert torch.allclose(whole, torch.stack(stepped, 1), atol=1e-12)
    assert torch.allclose(model(batch.src, batch.src_lengths, batch.tgt_in, teacher_forcing=0.999999,
                                generator=torch.Generator().manual_seed(0)), whole, atol=1e-12)


def test_free_running_feeds_back_the_argmax():
    model = small_model("LSTM", False)
    batch = collate(reversal_pairs(3, 3, 5, generator=4))
    free = model(batch.src, batch.src_lengths, batch.tgt_in, teacher_forcing=0.0)  # (B, T, V)
    fed = torch.cat([batch.tgt_in[:, :1], free.argmax(-1)[:, :-1]], dim=1)
    assert torch.allclose(model(batch.src, batch.src_lengths, fed), free, atol=1e-12)


@pytest.mark.parametrize("kind", ["GRU", "LSTM"])
def test_model_greedy_and_beam_one_agree_and_batch_equals_alone(kind):
    model = small_model(kind, True)
    batch = collate(reversal_pairs(6, 2, 8, generator=5))
    g, w = model.greedy(batch.src, batch.src_lengths, 10)
    assert w is None
    b1 = model.beam_search(batch.src, batch.src_lengths, 1, 10, alpha=0.0)
    assert torch.equal(g.tokens, b1.tokens)
    b3 = model.beam_search(batch.src, batch.src_lengths, 3, 10)
    for i in range(6):
        n = int(batch.src_lengths[i])
        alone = model.beam_search(batch.src[i:i + 1, :n], batch.src_lengths[i:i + 1], 3, 10)
        k = int(alone.lengths[0])
        assert b3.tokens[i, :k].tolist() == alone.tokens[0, :k].tolist()
    # beam search finds a hypothesis at least as likely (normalised) as greedy's
    gl = g.scores / g.lengths.double()
    assert (b3.scores >= gl - 1e-9).all()


def test_loss_is_finite_and_gradients_reach_the_encoder():
    model = small_model("GRU", True, dtype=torch.float32)
    batch = collate(reversal_pairs(8, 1, 9, generator=0))
    loss = model.loss(batch)
    loss.backward()
    assert torch.isfinite(loss)
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model.encoder.rnn.weight_ih_l0_reverse.grad.abs().sum() > 0


def test_clear_errors():
    model = small_model()
    with pytest.raises(ValueError, match="src"):
        model.encoder(torch.randn(2, 3), torch.tensor([3, 3]))
    with pytest.raises(ValueError, match="lengths"):
        model.encoder(torch.ones(2, 3, dtype=torch.long), torch.tensor([3]))
    enc = Encoder(13, 4, 5, bidirectional=True)
    with pytest.raises(ValueError, match="D\\*H"):
        Seq2Seq(enc, Decoder(13, 4, 5)).encode(torch.ones(1, 2, dtype=torch.long), torch.tensor([2]))
    with pytest.raises(TypeError, match="same kind"):
        Seq2Seq(Encoder(13, 4, 5, kind="LSTM"), Decoder(13, 4, 5)).encode(
            torch.ones(1, 2, dtype=torch.long), torch.tensor([2]))
    with pytest.raises(ValueError, match="beam_width"):
        model.beam_search(torch.ones(1, 2, dtype=torch.long), torch.tensor([2]), 0, 4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_on_the_gpu():
    model = small_model("LSTM", True).cuda()
    batch = collate(reversal_pairs(4, 2, 6, generator=1), device="cuda")
    assert model.loss(batch).is_cuda
    g, _ = model.greedy(batch.src, batch.src_lengths, 8)
    b = model.beam_search(batch.src, batch.src_lengths, 3, 8)
    assert g.tokens.is_cuda and b.tokens.is_cuda
    cpu = model.cpu().beam_search(batch.src.cpu(), batch.src_lengths.cpu(), 3, 8)
    assert torch.equal(cpu.tokens, b.tokens.cpu())
