"""rnncourse.masking and rnncourse.data.padding against torch's own tools:
pad_sequence, cross_entropy(ignore_index), pack/pad_packed_sequence."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence

from rnncourse import masking
from rnncourse.data.padding import pad_batch
from rnncourse.guard import BlockedError, blocked, REFERENCE_MODELS
from rnncourse.validation import ShapeError

D = torch.float64


def batch(lengths, H=3, seed=0, dtype=D):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(L, H, generator=g, dtype=dtype) for L in lengths]


@pytest.mark.parametrize("lengths", [[1], [3, 1, 5], [4, 4], [0, 2], [7, 1, 1, 2]])
def test_pad_batch_matches_pad_sequence(lengths):
    seqs = batch(lengths)
    padded, L, mask = pad_batch(seqs, pad_value=-1.0)
    torch.testing.assert_close(padded, pad_sequence(seqs, batch_first=True, padding_value=-1.0))
    assert L.dtype == torch.int64 and L.tolist() == lengths
    assert mask.dtype == torch.bool and mask.sum(1).tolist() == lengths
    assert mask.tolist() == [[t < n for t in range(max(lengths))] for n in lengths]


def test_pad_batch_left_and_tokens():
    tokens = [torch.tensor([5, 6, 7]), torch.tensor([9])]
    padded, L, mask = pad_batch(tokens, side="left")
    assert padded.tolist() == [[5, 6, 7], [0, 0, 9]] and padded.dtype == torch.int64
    assert mask.tolist() == [[True] * 3, [False, False, True]]


def test_pad_batch_bad_input_says_what():
    with pytest.raises(ShapeError, match=r"sequences\[1\] has step shape \(2,\)"):
        pad_batch([torch.zeros(2, 3), torch.zeros(2, 2)])
    with pytest.raises(TypeError, match="float32"):
        pad_batch([torch.zeros(2), torch.zeros(2, dtype=D)])
    with pytest.raises(ValueError, match="empty"):
        pad_batch([])
    with pytest.raises(TypeError, match="list or tuple"):
        pad_batch(torch.zeros(2, 3))


def test_lengths_to_mask():
    m = masking.lengths_to_mask(torch.tensor([2, 0, 3]), max_len=4)
    assert m.tolist() == [[1, 1, 0, 0], [0, 0, 0, 0], [1, 1, 1, 0]] and m.dtype == torch.bool
    assert masking.lengths_to_mask(torch.tensor([1, 3])).shape == (2, 3)
    with pytest.raises(ValueError, match=r"\[0, T=2\]"):
        masking.lengths_to_mask(torch.tensor([3]), max_len=2)
    with pytest.raises(TypeError, match="integer"):
        masking.lengths_to_mask(torch.tensor([1.0]))


@pytest.mark.parametrize("dtype", [torch.float32, D])
@pytest.mark.parametrize("lengths", [[1], [5, 1, 3], [2, 2]])
def test_masked_cross_entropy_is_torchs_ignore_index(lengths, dtype):
    g = torch.Generator().manual_seed(1)
    B, T, V = len(lengths), max(lengths), 4
    logits = torch.randn(B, T, V, generator=g, dtype=dtype, requires_grad=True)
    targets = torch.randint(V, (B, T), generator=g)
    mask = masking.lengths_to_mask(torch.tensor(lengths), T)
    ours = masking.masked_cross_entropy(logits, torch.where(mask, targets, torch.full_like(targets, 99)), mask)
    theirs = F.cross_entropy(logits.reshape(-1, V), torch.where(mask, targets, -100).reshape(-1))
    torch.testing.assert_close(ours, theirs)
    ga, = torch.autograd.grad(ours, logits)
    gb, = torch.autograd.grad(theirs, logits)
    torch.testing.assert_close(ga, gb)
    assert ours.dtype == dtype


def test_masked_loss_does_not_change_with_more_padding():
    g = torch.Generator().manual_seed(2)
    logits = torch.randn(2, 3, 5, generator=g, dtype=D)
    targets = torch.randint(5, (2, 3), generator=g)
    mask = masking.lengths_to_mask(torch.tensor([3, 1]), 3)
    more = torch.cat([logits, torch.randn(2, 4, 5, generator=g, dtype=D)], 1)
    more_t = torch.cat([targets, torch.zeros(2, 4, dtype=torch.int64)], 1)
    more_m = masking.lengths_to_mask(torch.tensor([3, 1]), 7)
    torch.testing.assert_close(masking.masked_cross_entropy(logits, targets, mask),
                               masking.masked_cross_entropy(more, more_t, more_m))


def test_last_valid_and_masked_mean():
    out = torch.arange(2 * 4 * 2, dtype=D).view(2, 4, 2)
    L = torch.tensor([4, 1])
    assert masking.last_valid(out, L).tolist() == [[6, 7], [8, 9]]
    mask = masking.lengths_to_mask(L, 4)
    assert masking.masked_mean(out, mask).tolist() == [[3, 4], [8, 9]]
    with pytest.raises(ValueError, match=r"\[1, T=4\]"):
        masking.last_valid(out, torch.tensor([4, 0]))
    with pytest.raises(ShapeError, match=r"lengths must have shape \(B,\) = \(2,\)"):
        masking.last_valid(out, torch.tensor([4]))
    with pytest.raises(TypeError, match="bool"):
        masking.masked_mean(out, mask.long())


def test_last_valid_agrees_with_packed_lstm_final_state():
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, batch_first=True).double()
    seqs = batch([4, 1, 3])
    x, L, _ = pad_batch(seqs)
    packed = torch.nn.utils.rnn.pack_padded_sequence(x, L, batch_first=True, enforce_sorted=False)
    out, (h, _) = lstm(packed)
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(out, batch_first=True)
    torch.testing.assert_close(masking.last_valid(out, L), h[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, D])
def test_masked_softmax_exact_zeros_and_no_nan(dtype):
    scores = torch.tensor([[1.0, 2.0, 3.0], [60000.0, -60000.0, 0.0], [1.0, 1.0, 1.0]], dtype=dtype)
    mask = torch.tensor([[True, True, False], [True, False, True], [False, False, False]])
    w = masking.masked_softmax(scores, mask)
    assert w.dtype == dtype and not torch.isnan(w).any()
    assert (w[~mask] == 0).all()
    torch.testing.assert_close(w[0, :2].double(), torch.softmax(torch.tensor([1.0, 2.0], dtype=D), 0),
                               atol=1e-3, rtol=1e-3)
    assert w[2].tolist() == [0, 0, 0]
    torch.testing.assert_close(w[:2].sum(-1).double(), torch.ones(2, dtype=D), atol=1e-3, rtol=0)


def test_masked_softmax_broadcast_mask_and_gradcheck():
    g = torch.Generator().manual_seed(3)
    scores = torch.randn(2, 3, 4, generator=g, dtype=D, requires_grad=True)
    mask = masking.lengths_to_mask(torch.tensor([4, 2]), 4).unsqueeze(1)  # (B, 1, S)
    torch.autograd.gradcheck(lambda s: masking.masked_softmax(s, mask), (scores,))
    ref = torch.softmax(scores.masked_fill(~mask, float("-inf")), -1)
    torch.testing.assert_close(masking.masked_softmax(scores, mask), ref)
    with pytest.raises(ShapeError, match="does not broadcast"):
        masking.masked_softmax(scores, torch.ones(3, 3, dtype=torch.bool))


@pytest.mark.parametrize("lengths", [[3, 1, 0, 2], [1]])
def test_reverse_padded(lengths):
    x, L, mask = pad_batch(batch(lengths, H=2), pad_value=7.0)
    y = masking.reverse_padded(x, L)
    for b, n in enumerate(lengths):
        torch.testing.assert_close(y[b, :n], x[b, :n].flip(0))
        torch.testing.assert_close(y[b, n:], x[b, n:])
    torch.testing.assert_close(masking.reverse_padded(y, L), x)  # its own inverse


def test_meta_device_shapes():
    x = torch.empty(2, 5, 3, device="meta")
    L = torch.tensor([5, 2], device="meta")
    assert masking.reverse_padded(x, L).shape == (2, 5, 3)
    assert masking.last_valid(x, L).shape == (2, 3)


def test_blocked_while_a_learner_runs():
    with blocked("masked_cross_entropy", [REFERENCE_MODELS]):
        with pytest.raises(BlockedError, match="masking.masked_cross_entropy"):
            masking.masked_cross_entropy(torch.zeros(1, 1, 2), torch.zeros(1, 1, dtype=torch.long),
                                         torch.ones(1, 1, dtype=torch.bool))
        with pytest.raises(BlockedError, match="pad_batch"):
            pad_batch([torch.zeros(1)])
