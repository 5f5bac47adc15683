"""rnncourse.data.tagging: the tagging language of lessons 06 and 07, whose right
context decides some tags, and the exact ceiling of a left-to-right tagger."""
import math
from collections import Counter, defaultdict

import pytest
import torch

from rnncourse.data import tagging as tg
from rnncourse.data.tagging import TaggingLanguage


def test_seeded_and_reproducible():
    a = tg.tagging_sentences(30, 5)
    b = tg.tagging_sentences(30, torch.Generator().manual_seed(5))
    assert all(torch.equal(u, v) for u, v in zip(a.tokens, b.tokens))
    assert all(torch.equal(u, v) for u, v in zip(a.tags, b.tags))
    assert a.ceiling == b.ceiling
    c = tg.tagging_sentences(30, 6)
    assert any(not torch.equal(u, v) for u, v in zip(a.tokens, c.tokens))


def test_lengths_vary_over_the_whole_range():
    lang = TaggingLanguage(min_len=3, max_len=9)
    data = tg.tagging_sentences(400, 0, lang)
    lengths = Counter(int(x.shape[0]) for x in data.tokens)
    assert set(lengths) == set(range(3, 10))
    for x, y in zip(data.tokens, data.tags):
        assert x.dtype == y.dtype == torch.int64 and x.shape == y.shape
        assert ((x >= 1) & (x < tg.vocab_size())).all()  # never <pad> inside a sentence
        assert ((y >= 0) & (y < tg.num_tags())).all()


def test_the_right_context_decides_every_tag():
    """Read whole, each sentence's tags follow by rule: the bidirectional ceiling is 1."""
    lang = TaggingLanguage(min_len=1, max_len=30, max_gap=4)
    data = tg.tagging_sentences(500, 1, lang)
    n_amb = 0
    for x, y in zip(data.tokens, data.tags):
        assert torch.equal(tg.full_context_tags(x), y)
        where = tg.resolver_position(x)
        for t, u in enumerate(where):
            assert t <= u <= t + lang.max_gap + 1
            assert (u > t) == bool(tg.is_ambiguous(x[t]))
        n_amb += int(tg.is_ambiguous(x).sum())
    assert n_amb > 500


def test_ambiguous_words_are_ambiguous_from_the_left():
    """The same left context (here: the whole prefix up to the word) is followed by
    both senses, at the frequencies p_verb says, whatever the previous token is."""
    lang = TaggingLanguage(p_ambiguous=0.5, p_verb=(0.5, 0.5, 0.8, 0.2))
    data = tg.tagging_sentences(6000, 2, lang)
    by_prefix = defaultdict(set)
    by_prev = defaultdict(Counter)  # (previous token, word) -> sense counts
    for x, y in zip(data.tokens, data.tags):
        ids, tags = x.tolist(), y.tolist()
        for t, i in enumerate(ids):
            if tg.TOKENS[i] in tg.AMBIGUOUS_WORDS:
                assert tags[t] in (tg.NOUN, tg.VERB)
                by_prefix[tuple(ids[: t + 1])].add(tags[t])
                by_prev[(ids[t - 1] if t else None, i)][tags[t]] += 1
    assert sum(len(s) == 2 for s in by_prefix.values()) > 20
    for (prev, i), counts in by_prev.items():
        n = sum(counts.values())
        if n < 100:
            continue
        p = lang.p_verb[tg.AMBIGUOUS_WORDS.index(tg.TOKENS[i])]
        share = counts[tg.VERB] / n
        assert abs(share - p) < 4.5 * math.sqrt(p * (1 - p) / n), (tg.TOKENS[prev or 0], tg.TOKENS[i], share, p)


def test_sample_ceiling_is_the_mean_best_posterior():
    lang = TaggingLanguage(p_verb=(0.5, 0.7, 0.9, 0.1))
    data = tg.tagging_sentences(50, 3, lang)
    right, total = 0.0, 0
    for x in data.tokens:
        for i in x.tolist():
            w = tg.TOKENS[i]
            right += max(lang.p_verb[tg.AMBIGUOUS_WORDS.index(w)], 1 - lang.p_verb[tg.AMBIGUOUS_WORDS.index(w)]) \
                if w in tg.AMBIGUOUS_WORDS else 1.0
            total += 1
    assert data.ceiling == pytest.approx(right / total, abs=1e-12)
    post = tg.left_to_right_posterior(data.tokens[0], lang)
    assert torch.allclose(post.sum(-1), torch.ones(len(data.tokens[0]), dtype=torch.float64))
    batch = tg.collate(data.tokens, data.tags)
    assert tg.left_to_right_ceiling(batch.tokens, lang, lengths=batch.lengths) == pytest.approx(data.ceiling)


def _enumerate_ceiling(lang: TaggingLanguage) -> float:
    """E[ambiguous words] by enumerating every way to fill a sentence (independent of
    expected_ceiling's recursion), then the ceiling."""
    def ambiguous(r):  # expected ambiguous words in r tokens still to fill
        if r == 0:
            return 0.0
        plain = ambiguous(r - 1)
        if r < 2:
            return plain
        gaps = list(range(min(lang.max_gap, r - 2) + 1))
        amb = sum(1 + ambiguous(r - 2 - g) for g in gaps) / len(gaps)
        return lang.p_ambiguous * amb + (1 - lang.p_ambiguous) * plain
    Ls = range(lang.min_len, lang.max_len + 1)
    loss = sum(min(p, 1 - p) for p in lang.p_verb) / len(lang.p_verb)
    return 1 - (sum(ambiguous(L) for L in Ls) / len(Ls)) * loss / (sum(Ls) / len(Ls))


def test_expected_ceiling_exact_small_language():
    lang = TaggingLanguage(min_len=2, max_len=4, p_ambiguous=0.5, max_gap=1, p_verb=(0.5, 0.5, 0.5, 0.5))
    # L=2: A = 0.5; L=3: 0.5*(1+0)+0.5*0.5 = 0.75; L=4: gaps {0,1}: 0.5*(1+(0.5+0)/2)+0.5*0.75 = 1.0
    assert tg.expected_ceiling(lang) == pytest.approx(1 - (0.5 + 0.75 + 1.0) / 3 * 0.5 / 3, abs=1e-15)
    for lang in (tg.LANGUAGE, TaggingLanguage(min_len=1, max_len=12, p_ambiguous=0.7, max_gap=5)):
        assert tg.expected_ceiling(lang) == pytest.approx(_enumerate_ceiling(lang), abs=1e-12)


def test_sample_ceiling_converges_to_expected_and_the_bayes_tagger_reaches_it():
    lang = tg.LANGUAGE
    data = tg.tagging_sentences(10000, 4, lang)
    exact = tg.expected_ceiling(lang)
    assert abs(data.ceiling - exact) < 0.004
    right = sum(int((tg.best_left_to_right_tags(x, lang) == y).sum()) for x, y in zip(data.tokens, data.tags))
    total = sum(len(x) for x in data.tokens)
    assert abs(right / total - data.ceiling) < 0.006
    assert 0.85 < exact < 0.95  # well below 1: room for a bidirectional tagger


def test_ceiling_limits():
    assert tg.expected_ceiling(TaggingLanguage(p_ambiguous=0.0)) == 1.0
    assert tg.tagging_sentences(20, 0, TaggingLanguage(p_ambiguous=0.0)).ceiling == 1.0
    assert tg.expected_ceiling(TaggingLanguage(p_verb=(1.0, 0.0, 1.0, 0.0))) == 1.0
    assert tg.expected_ceiling(TaggingLanguage(min_len=1, max_len=1, p_ambiguous=1.0)) == 1.0


def test_batch_is_padded_with_lengths_and_mask():
    b = tg.tagging_batch(16, 7, TaggingLanguage(min_len=1, max_len=15), tag_pad_value=-100)
    B, T = b.tokens.shape
    assert B == 16 and T == int(b.lengths.max()) and b.tags.shape == (B, T)
    assert torch.equal(b.mask, torch.arange(T)[None] < b.lengths[:, None])
    assert (b.tokens[~b.mask] == tg.PAD_ID).all() and (b.tokens[b.mask] != tg.PAD_ID).all()
    assert (b.tags[~b.mask] == -100).all()
    assert b.ceiling == tg.left_to_right_ceiling(b.tokens, lengths=b.lengths)
    meta = tg.tagging_batch(3, 0, device="meta")
    assert meta.tokens.device.type == "meta" and meta.mask.device.type == "meta"


def test_decode():
    data = tg.tagging_sentences(1, 0)
    words = tg.decode(data.tokens[0])
    assert len(words) == len(data.tokens[0]) and all(w in tg.TOKENS[1:] for w in words)
    assert all(t in tg.TAGS for t in tg.decode_tags(data.tags[0]))
    assert tg.TOKENS[0] == "<pad>" and tg.vocab_size() == len(tg.TOKENS)


def test_rejects_bad_arguments():
    with pytest.raises(ValueError, match="min_len"):
        TaggingLanguage(min_len=5, max_len=4)
    with pytest.raises(ValueError, match="p_verb"):
        TaggingLanguage(p_verb=(0.5,))
    with pytest.raises(ValueError, match="p_ambiguous"):
        TaggingLanguage(p_ambiguous=1.5)
    with pytest.raises(ValueError, match="n must"):
        tg.tagging_sentences(0)
    with pytest.raises(TypeError, match="seed"):
        tg.tagging_sentences(3, 1.5)
    with pytest.raises(ValueError, match="lengths"):
        tg.left_to_right_ceiling(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="<pad>"):
        tg.left_to_right_ceiling([torch.tensor([1, 0])])
    with pytest.raises(ValueError, match="not a word"):
        tg.left_to_right_posterior(torch.tensor([1, 99]))
    with pytest.raises(ValueError, match="shape"):
        tg.collate([torch.tensor([1, 2])], [torch.tensor([1])])


def test_lookahead_ceiling_rises_to_one():
    lang = TaggingLanguage(max_gap=3)
    data = tg.tagging_sentences(300, 8, lang)
    values = [tg.lookahead_ceiling(data.tokens, d, lang) for d in range(6)]
    assert values[0] == pytest.approx(data.ceiling, abs=1e-12)
    assert all(a < b for a, b in zip(values[:4], values[1:5]))  # each delay resolves more words
    assert values[4] == values[5] == 1.0  # max_gap + 1 tokens of lookahead resolve every word
    # by hand: an ambiguous word w resolved u tokens later costs 1 - max(p_w, 1 - p_w) while delay < u
    n = sum(len(x) for x in data.tokens)
    for d in range(6):
        lost = 0.0
        for x in data.tokens:
            for t, (i, u) in enumerate(zip(x.tolist(), tg.resolver_position(x))):
                if u - t > d:
                    p = lang.p_verb[tg.AMBIGUOUS_WORDS.index(tg.TOKENS[i])]
                    lost += 1 - max(p, 1 - p)
        assert values[d] == pytest.approx(1 - lost / n, abs=1e-12)
    with pytest.raises(ValueError, match="delay"):
        tg.lookahead_ceiling(data.tokens, -1)
