"""The late-flip sentiment task: seeded, the label a function of the tokens, lengths
spread from 5 to 100, flips in the last few tokens."""
import pytest
import torch

from rnncourse.data.sentiment import (
    BUT, FLIP_BUT, FLIP_NOT, NEGATIVE, NO_FLIP, NOT, PAD, POSITIVE, VOCAB_SIZE, WORDS, decode,
    sentiment_batch, sentiment_examples, sentiment_stream,
)

POS = {WORDS.index(w) for w in POSITIVE}
NEG = {WORDS.index(w) for w in NEGATIVE}


def label_by_rule(tokens: list) -> int:
    """The task's rule, written independently: the polarity of the last clause."""
    if BUT in tokens:
        after = tokens[tokens.index(BUT) + 1:]
        return 1 if any(t in POS for t in after) else 0
    if NOT in tokens:
        word = tokens[tokens.index(NOT) + 1]
        return 0 if word in POS else 1
    return 1 if any(t in POS for t in tokens) else 0


def test_seeded_and_reproducible():
    a, b = sentiment_examples(50, generator=3), sentiment_examples(50, generator=3)
    assert all(torch.equal(x, y) for x, y in zip(a.sequences, b.sequences))
    assert torch.equal(a.labels, b.labels)
    c = sentiment_examples(50, generator=4)
    assert not all(torch.equal(x, y) for x, y in zip(a.sequences, c.sequences))


def test_label_is_the_last_clause_polarity():
    data = sentiment_examples(2000, generator=0)
    for seq, y, f, kind in zip(data.sequences, data.labels, data.flip_pos, data.flip_kind):
        tokens = seq.tolist()
        assert PAD not in tokens and max(tokens) < VOCAB_SIZE
        assert label_by_rule(tokens) == int(y)
        opening = tokens[:int(f)] if f >= 0 else tokens
        assert not set(opening) & POS or not set(opening) & NEG  # one polarity in the opening
        if kind == NO_FLIP:
            assert f == -1 and BUT not in tokens and NOT not in tokens
        else:
            assert tokens[int(f)] == (BUT if kind == FLIP_BUT else NOT)
            assert 2 <= len(tokens) - int(f) <= 8  # late: within the last max_clause tokens
            first = 1 if set(opening) & POS else 0
            assert int(y) == 1 - first  # a flip reverses the opening


def test_lengths_spread_and_classes_and_flips_balanced():
    data = sentiment_examples(4000, generator=1)
    assert data.lengths.min() == 5 and data.lengths.max() == 100
    assert torch.equal(data.lengths, torch.tensor([len(s) for s in data.sequences]))
    assert abs(data.labels.float().mean() - 0.5) < 0.03
    flipped = data.flip_kind != NO_FLIP
    assert abs(flipped.float().mean() - 0.5) < 0.03
    assert abs((data.flip_kind == FLIP_NOT).float().mean() - 0.25) < 0.03


def test_options_are_checked():
    with pytest.raises(ValueError, match="min_len"):
        sentiment_examples(3, min_len=3)
    with pytest.raises(ValueError, match="flip_prob"):
        sentiment_examples(3, flip_prob=1.5)
    with pytest.raises(ValueError, match="n must"):
        sentiment_examples(0)
    data = sentiment_examples(200, min_len=4, max_len=4, flip_prob=1.0, generator=2)
    assert (data.flip_kind != NO_FLIP).all() and (data.lengths == 4).all()


def test_batches_are_right_padded_with_pad():
    tokens, lengths, labels = sentiment_batch(16, generator=5)
    assert tokens.dtype == torch.int64 and tokens.shape == (16, int(lengths.max()))
    for row, L in zip(tokens, lengths):
        assert (row[:L] != PAD).all() and (row[L:] == PAD).all()
    first = next(iter(sentiment_stream(16, seed=5)))
    assert torch.equal(first[0], tokens) and torch.equal(first[2], labels)


def test_decode():
    assert decode(torch.tensor([WORDS.index("good"), BUT, WORDS.index("dull"), PAD])) == "good but dull _"
