"""rnncourse.data.seq2seq: vocabularies, the seeded task generators and the collate."""
import datetime

import pytest
import torch

from rnncourse.data.seq2seq import (BOS, DATE_FORMATS, DATE_TEXT, DIGITS, EOS, ISO, MONTHS, PAD,
                                    Vocab, batches, collate, copy_pairs, date_examples, date_pairs,
                                    decoder_inputs_targets, reversal_pairs)


def test_vocab_specials_encode_decode():
    assert (PAD, BOS, EOS) == (0, 1, 2)
    assert len(DIGITS) == 13
    assert DIGITS.encode("301").tolist() == [6, 3, 4]
    assert DIGITS.encode("301", bos=True, eos=True).tolist() == [BOS, 6, 3, 4, EOS]
    assert DIGITS.decode(torch.tensor([BOS, 6, 3, 4, EOS, 5, PAD])) == "301"
    assert DIGITS.decode([6, PAD, 3]) == "30"
    with pytest.raises(KeyError, match="'x'"):
        DIGITS.encode("3x")
    with pytest.raises(ValueError):
        Vocab("aa")
    with pytest.raises(ValueError):
        Vocab(["<pad>", "a"])


def test_reversal_and_copy_are_seeded_and_correct():
    pairs = reversal_pairs(200, 5, 20, generator=3)
    lengths = [len(s) for s, _ in pairs]
    assert min(lengths) == 5 and max(lengths) == 20
    for s, t in pairs:
        assert torch.equal(t, s.flip(0)) and s.dtype == torch.int64
        assert ((s >= 3) & (s < 13)).all()
    again = reversal_pairs(200, 5, 20, generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(pairs, again))
    for s, t in copy_pairs(20, 1, 3, generator=0):
        assert torch.equal(s, t) and 1 <= len(s) <= 3
    with pytest.raises(ValueError):
        reversal_pairs(3, 0, 4)
    with pytest.raises(ValueError):
        reversal_pairs(3, 5, 4)


def test_dates_parse_back_to_their_iso_form():
    examples = date_examples(3000, generator=0)
    seen_formats, seen_cases = set(), set()
    for text, iso in examples:
        date = datetime.date.fromisoformat(iso)
        assert 1950 <= date.year <= 2049
        assert str(date.year) in text
        words = text.replace(",", " ").split()
        named = [w for w in words if w.isalpha()]
        if any(w.lower().startswith(MONTHS[date.month - 1][:3]) for w in named):
            seen_cases.add("upper" if text.isupper() else "title" if named[0].istitle() else "lower")
        digits = [int(w) for w in text.replace(".", " ").replace("/", " ").replace("-", " ")
                  .replace(",", " ").split() if w.isdigit()]
        assert date.day in digits
        seen_formats.add(sum(c.isdigit() for c in text))
        assert DATE_TEXT.decode(DATE_TEXT.encode(text)) == text
        assert ISO.decode(ISO.encode(iso)) == iso
    assert seen_cases == {"lower", "title", "upper"}
    assert any(t.startswith("0") or " 0" in t for t, _ in examples), "zero-padded days"
    assert any(" 3 " in t or t.startswith("3 ") for t, _ in examples), "unpadded days"
    assert len(DATE_FORMATS) >= 10
    pairs = date_pairs(5, generator=0)
    assert [ISO.decode(t) for _, t in pairs] == [iso for _, iso in date_examples(5, generator=0)]


def test_decoder_inputs_and_targets_are_the_target_shifted_by_one():
    targets = [torch.tensor([5, 6, 7]), torch.tensor([8]), torch.tensor([], dtype=torch.int64)]
    tgt_in, tgt_out, mask = decoder_inputs_targets(targets)
    assert tgt_in.tolist() == [[BOS, 5, 6, 7], [BOS, 8, PAD, PAD], [BOS, PAD, PAD, PAD]]
    assert tgt_out.tolist() == [[5, 6, 7, EOS], [8, EOS, PAD, PAD], [EOS, PAD, PAD, PAD]]
    assert mask.tolist() == [[True] * 4, [True, True, False, False], [True, False, False, False]]
    assert (tgt_in[:, 1:][mask[:, 1:]] == tgt_out[:, :-1][mask[:, 1:]]).all()
    with pytest.raises(TypeError, match="targets\\[1\\]"):
        decoder_inputs_targets([torch.tensor([1]), torch.tensor([1.0])])


def test_collate_and_batches():
    pairs = reversal_pairs(10, 2, 6, generator=1)
    b = collate(pairs)
    assert b.src.shape == (10, int(b.src_lengths.max()))
    assert torch.equal(b.src_mask, b.src != PAD)
    assert torch.equal(b.tgt_mask.sum(1), b.src_lengths + 1)
    for i, (s, t) in enumerate(pairs):
        assert b.src[i, :len(s)].tolist() == s.tolist()
        assert b.tgt_out[i, :len(t) + 1].tolist() == t.tolist() + [EOS]
    epoch = batches(pairs, 4, generator=0)
    assert [len(x.src) for x in epoch] == [4, 4, 2]
    assert sorted(sum((x.src_lengths.tolist() for x in epoch), [])) == sorted(len(s) for s, _ in pairs)
    with pytest.raises(ValueError, match="non-empty"):
        collate([(torch.tensor([], dtype=torch.int64), torch.tensor([3]))])


# --- the saved runs of lesson 09 (data/seq2seq/, rnncourse.experiments.seq2seq) ---------

import numpy as np  # noqa: E402

from rnncourse.experiments import seq2seq as experiment  # noqa: E402


def test_saved_runs_match_the_settings_and_cover_every_size_and_seed():
    results = experiment.load_results()
    s = experiment.SETTINGS
    assert experiment.Seq2SeqSettings.from_dict(results["config"]) == s
    assert set(results["bottleneck"]) == {f"{H}/{seed}" for H in s.hidden_sizes for seed in s.seeds}
    assert set(results["teacher_forcing"]) == {f"{p}/{seed}" for p in (1.0, 0.0) for seed in s.tf_seeds}
    for run in results["bottleneck"].values():
        assert list(map(int, run["exact_by_length"])) == list(range(s.min_len, s.max_len + 1))
        assert run["parameters"] == experiment.count_parameters(experiment.build_model(run["hidden_size"]))


def _exact(results, H):
    lengths = range(experiment.SETTINGS.min_len, experiment.SETTINGS.max_len + 1)
    return np.array([[r["exact_by_length"][str(L)] for L in lengths]
                     for r in results["bottleneck"].values() if r["hidden_size"] == H])


def test_saved_runs_show_the_bottleneck_the_lesson_describes():
    results = experiment.load_results()
    for H in experiment.SETTINGS.hidden_sizes:
        e = _exact(results, H)  # (seeds, 16 lengths)
        # every seed of every size: long sources far worse than short ones
        assert (e[:, :5].mean(1) - e[:, -5:].mean(1) > 0.4).all(), H


def test_the_saved_model_reproduces_its_saved_accuracy():
    results = experiment.load_results()
    s = experiment.SETTINGS
    model = experiment.load_model()
    exact = experiment.exact_by_length(model, experiment.test_set(s.test_per_length))
    saved = results["bottleneck"][f"{s.hidden_size}/{s.seeds[0]}"]["exact_by_length"]
    assert {str(k): v for k, v in exact.items()} == saved


def test_training_reproduces_the_start_of_a_saved_run():
    s = experiment.SETTINGS
    H = min(s.hidden_sizes)
    _, history, _ = experiment.train(H, s, steps=s.eval_every, seed=s.seeds[0], threads=1)
    saved = experiment.load_results()["bottleneck"][f"{H}/{s.seeds[0]}"]
    assert history.metric("tf_loss")[1][0] == pytest.approx(saved["tf_loss"][0], abs=2e-4)
    assert history.losses[0] == pytest.approx(saved["losses"][0], abs=2e-4)
