"""rnncourse.data.text: the Markov source's exact entropy rate, the course's prose, the
contiguous split; rnncourse.ngram: smoothed n-grams that are distributions."""
import math

import pytest
import torch

from rnncourse.data import text
from rnncourse.data.text import (
    MarkovSource, Vocab, course_prose, extract_prose, markov_source, prose_snapshot, split_blocks,
)
from rnncourse.ngram import NGram, ngram_bits


def test_vocab_round_trip_and_errors():
    v = Vocab.of("hello world")
    assert v.chars == " dehlorw" and len(v) == 8
    assert v.decode(v.encode("hello")) == "hello"
    with pytest.raises(KeyError, match="'z'"):
        v.encode("z")


def test_markov_rows_are_distributions_and_word_like():
    s = markov_source(order=2, seed=3)
    assert s.probs.shape == (9 ** 2, 9)
    torch.testing.assert_close(s.probs.sum(1), torch.ones(81, dtype=torch.float64))
    assert (s.probs > 0).all()  # every transition possible: chains can be joined
    # right after a space, a space is rare (only the floor)
    after_space = torch.arange(81) % 9 == 0
    assert s.probs[after_space, 0].max() < 0.01


def test_stationary_distribution_is_stationary():
    s = markov_source(order=2, seed=1)
    pi = s.stationary()
    M = torch.zeros(81, 81, dtype=torch.float64).scatter_add_(1, s._next_context(), s.probs)
    torch.testing.assert_close(pi @ M, pi)
    assert abs(float(pi.sum()) - 1) < 1e-12


def test_entropy_rate_of_an_iid_source_is_its_entropy():
    # order 1 with identical rows: the chain is i.i.d., H = entropy of the row, by hand
    row = torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64)
    s = MarkovSource("abcd", 1, row.repeat(4, 1))
    assert s.entropy_rate() == pytest.approx(1.75, abs=1e-12)


def test_entropy_rate_of_a_deterministic_cycle_is_zero():
    s = MarkovSource("ab", 1, torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64))
    assert s.entropy_rate() == pytest.approx(0.0, abs=1e-12)


def test_sample_estimates_the_entropy_rate():
    s = markov_source()
    ids = s.sample(200_000, 5)
    assert ids.dtype == torch.int64 and ids.shape == (200_000,) and int(ids.max()) < 9
    assert torch.equal(ids, s.sample(200_000, 5))  # seeded
    assert abs(s.cross_entropy(ids) - s.entropy_rate()) < 0.02


def test_split_by_contiguous_blocks():
    ids = torch.arange(10_000)
    train, val = split_blocks(ids, block=100, every=10)
    assert val.numel() == 1000 and train.numel() == 9000
    assert torch.equal(val[:100], torch.arange(900, 1000))  # an unbroken block
    assert set(train.tolist()).isdisjoint(val.tolist())
    with pytest.raises(ValueError, match="no validation block"):
        split_blocks(torch.arange(50), block=100)


def test_course_prose_reads_the_solutions_markdown_without_written_answers(tmp_path):
    import nbformat
    from nbformat.v4 import new_markdown_cell, new_notebook, new_code_cell
    folder = tmp_path / "01_x"
    folder.mkdir()
    answer = new_markdown_cell("SECRET ANSWER")
    answer.metadata["nbgrader"] = {"solution": True, "grade": True}
    nb = new_notebook(cells=[new_markdown_cell("Caf\u00e9 $x^2$\ttab"), new_code_cell("print(1)"), answer])
    nbformat.write(nb, folder / "01_x.ipynb")
    got = extract_prose(tmp_path)
    assert got == "Cafe $x^2$ tab\n"
    assert "SECRET" not in got and "print" not in got


def test_course_prose_in_a_checkout_and_without_solutions(monkeypatch, tmp_path):
    live, where = course_prose()
    assert "solutions" in where and len(live) > 10_000 and live.isascii()
    # an installed wheel has no solutions/: the snapshot is read, and its absence is explained
    monkeypatch.setattr(text, "solutions_dir", lambda: None)
    monkeypatch.setattr(text, "data_dir", lambda name="": tmp_path / name)
    with pytest.raises(FileNotFoundError, match="--only prose"):
        course_prose()
    (tmp_path / "language_model").mkdir()
    (tmp_path / "language_model" / "prose.txt").write_text("snapshot text\n")
    assert course_prose() == ("snapshot text\n", "the snapshot data/language_model/prose.txt")


def test_saved_snapshot_is_the_text_the_saved_model_was_trained_on_and_spans_every_lesson():
    import re

    from rnncourse.experiments.language_model import load_results, text_sha256
    from rnncourse.lessons import LESSONS

    snap = prose_snapshot()
    assert snap.isascii() and len(snap) > 50_000
    # the hash recorded when the prose model was trained: snapshot and model belong together
    assert text_sha256(snap) == load_results()["models"]["prose"]["text_sha256"]
    # taken by the same extraction from a course with every lesson of the lesson map
    # (retrain with `--only prose` when a lesson is added; wording edits need no retraining)
    headings = re.findall(r"^# (\d\d)  ", snap, flags=re.M)
    assert headings == [lesson.assignment[:2] for lesson in LESSONS]
    live_headings = re.findall(r"^# (\d\d)  ", course_prose("solutions")[0], flags=re.M)
    assert headings == live_headings


# ---------------------------------------------------------------- n-grams

def test_ngram_probabilities_sum_to_one_for_every_context():
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 5, (400,), generator=gen)
    for n in (1, 2, 3, 4):
        m = NGram(ids, n, 5)
        for h in ([0, 1, 2], [4, 4, 4], [3, 0, 1]):
            total = sum(2 ** float(m.log2_probs(torch.tensor(h[len(h) - n + 1:] + [a]))[0]) for a in range(5))
            assert total == pytest.approx(1.0, abs=1e-12)


def test_unigram_equals_smoothed_counts_by_hand():
    ids = torch.tensor([0, 0, 1, 0])  # counts 3, 1, 0 of V = 3; u = 2 seen types
    m = NGram(ids, 1, 3)
    p = [2 ** float(m.log2_probs(torch.tensor([a]))[0]) for a in range(3)]
    # Witten-Bell: (c(a) + u * 1/V) / (N + u)
    assert p == pytest.approx([(3 + 2 / 3) / 6, (1 + 2 / 3) / 6, (2 / 3) / 6])


def test_ngram_of_the_source_order_reaches_the_entropy_rate():
    s = markov_source()
    ids = s.sample(300_000, 1)
    train, val = split_blocks(ids)
    bits = ngram_bits(train, val, 9, orders=range(1, 6))
    assert bits[0] == pytest.approx(math.log2(9))
    assert bits[1] > bits[2] > bits[3] > bits[4]
    assert min(bits, key=bits.get) == 4 and bits[4] - s.entropy_rate() < 0.03
