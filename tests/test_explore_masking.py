"""The lesson-07 exploration's logic and measurements, called as plain functions."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.explore.masking import (  # noqa: E402
    accuracy_by, accuracy_table, correct, draw_readouts, readout_explorer, select, seeds_of,
    static_figure, x_values,
)
from rnncourse.explore.masking_costs import (  # noqa: E402
    add_padding, final_states, loss_under_padding, packing_vs_masking,
)


def fake_results():
    """Six test examples, two seeds: small enough to check by hand."""
    test = {"lengths": [5, 12, 50, 95, 100, 8], "labels": [0, 1, 1, 0, 1, 0],
            "flip_pos": [-1, 9, -1, 90, 40, 6], "flip_kind": [0, 1, 0, 2, 1, 1]}
    right = {"last": ["111111", "111110"], "padded_last": ["110000", "100001"],
             "mean": ["111101", "111001"]}
    runs = {f"{r}/{s}": {"readout": r, "seed": s, "correct": c[s], "accuracy": c[s].count("1") / 6}
            for r, cs in right.items() for s, c in enumerate([cs, cs])}
    return {"config": {}, "test": test, "runs": runs}


def test_tables_by_hand():
    r = fake_results()
    assert seeds_of(r) == [0, 1]
    np.testing.assert_array_equal(correct(r, "padded_last"), [[1, 1, 0, 0, 0, 0], [1, 0, 0, 0, 0, 1]])
    assert select(r, "with a flip").tolist() == [False, True, False, True, True, True]
    assert select(r, "all", (10, 60)).tolist() == [False, True, True, False, False, False]
    np.testing.assert_allclose(accuracy_table(r)["last"], [1.0, 5 / 6])
    np.testing.assert_allclose(x_values(r, "flip")[[1, 3]], [9 / 12, 90 / 95])
    assert np.isnan(x_values(r, "flip")[0])
    centres, acc, counts = accuracy_by(r, "mean", "length")
    assert centres[0] == 10 and counts[0] == 3 and counts.sum() == 6  # lengths 5, 8 and 12 share 5-14
    np.testing.assert_allclose(acc[:, 0], [1.0, 1.0])
    np.testing.assert_allclose(acc[:, -1], [0.5, 0.0])  # 95 and 100: one right for seed 0, none for seed 1
    centres, acc, counts = accuracy_by(r, "last", "flip")
    assert counts.sum() == 4  # only flipped examples have a flip position
    with pytest.raises(KeyError):
        correct(r, "first")
    with pytest.raises(ValueError):
        select(r, "some")


def _pixels(*args):
    fig = plt.figure(figsize=(6, 3))
    draw_readouts(fig, fake_results(), *args)
    fig.canvas.draw()
    pixels = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return pixels


def test_explorer_figure_changes_with_each_control():
    base = _pixels("length", "all", (5, 100), None)
    for changed in (("flip", "all", (5, 100), None), ("length", "with a flip", (5, 100), None),
                    ("length", "all", (5, 50), None), ("length", "all", (5, 100), 1)):
        assert not np.array_equal(base, _pixels(*changed)), changed


def test_explorer_widget_builds_and_redraws():
    import ipywidgets as widgets
    box = readout_explorer(fake_results())
    axis, examples = box.children[0].children
    lengths, seed = box.children[1].children
    out = box.children[2]
    assert isinstance(out, widgets.Output)
    for control, value in ((axis, "flip"), (examples, "without a flip"), (lengths, (5, 60)), (seed, 0)):
        before = out.outputs[0]["data"]["image/png"]
        control.value = value
        assert len(out.outputs) == 1 and out.outputs[0]["data"]["image/png"] != before
    assert plt.get_fignums() == []


def test_static_figure_has_labelled_axes():
    fig = static_figure(fake_results())
    assert len(fig.axes) == 2
    for ax in fig.axes:
        assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(fig)


def test_explorer_loads_the_saved_results_by_default():
    box = readout_explorer()
    assert [o[1] for o in box.children[1].children[1].options] == [-1, 0, 1, 2]
    plt.close("all")


# ---------------------------------------------------------------- measurements

def test_add_padding():
    x = torch.tensor([[3, 4], [5, 0]])
    assert add_padding(x, 3).tolist() == [[3, 4, 0, 0, 0], [5, 0, 0, 0, 0]]


def test_masked_loss_ignores_added_padding_and_every_position_loss_does_not():
    from rnncourse.data.tagging import num_tags, tagging_batch, vocab_size
    b = tagging_batch(6, 3)
    r = loss_under_padding(b.tokens, b.tags, b.lengths, vocab_size(), num_tags(), extras=(0, 5, 40))
    for name in ("LSTM", "BiLSTM, packed"):
        assert max(r[(name, "masked")]) - min(r[(name, "masked")]) < 1e-6
    for name in ("LSTM", "BiLSTM, padded", "BiLSTM, packed"):
        assert abs(r[(name, "every position")][-1] - r[(name, "every position")][0]) > 1e-2
    # the unpacked backward direction starts on the padding: even the masked loss moves
    assert r[("BiLSTM, padded", "masked")][0] != r[("BiLSTM, padded", "masked")][-1]


def test_final_state_alone_equals_last_valid_and_packed_not_the_padded_end():
    gen = torch.Generator().manual_seed(0)
    seqs = [torch.randn(L, 3, generator=gen, dtype=torch.float64) for L in (2, 6, 4)]
    d = final_states(seqs, index=0)
    assert d["padded batch, outputs[b, lengths[b] - 1]"] < 1e-12 and d["packed batch, h_n"] < 1e-12
    assert d["padded batch, outputs[:, -1]"] > 1e-3 and d["padded batch, h_n (no packing)"] > 1e-3
    assert final_states(seqs, index=1)["padded batch, outputs[:, -1]"] < 1e-12  # the longest one


def test_packing_and_masking_give_the_same_results():
    from rnncourse.data.sentiment import VOCAB_SIZE, sentiment_batch
    x, L, y = sentiment_batch(8, 0)
    r = packing_vs_masking(x, L, y, VOCAB_SIZE, E=4, H=6, repeats=1)
    assert r["logits_diff"] < 1e-5 and r["loss_diff"] < 1e-5 and r["grad_diff"] < 1e-5
    assert r["masked_s"] > 0 and r["packed_s"] > 0 and 0 < r["padding_fraction"] < 1


# ---------------------------------------------------------------- the saved runs

def test_saved_runs_record_the_settings_and_one_retrains_the_same():
    from rnncourse.experiments import masking as readouts
    from rnncourse.experiments import masking_tagger as tagger
    saved = readouts.load_results()
    assert readouts.MaskingSettings.from_dict(saved["config"]) == readouts.SETTINGS
    assert set(saved["runs"]) == {f"{r}/{s}" for r in readouts.READOUTS for s in readouts.SETTINGS.seeds}
    test = readouts.test_set()
    assert saved["test"]["lengths"] == test.lengths.tolist() and saved["test"]["labels"] == test.labels.tolist()
    tag = tagger.load_results()
    assert tagger.TaggerSettings.from_dict(tag["config"]) == tagger.SETTINGS
    # the shortest saved run, retrained: the same seed gives the same batches and weights
    model, history, _ = readouts.train("last", steps=readouts.SETTINGS.steps, seed=0, threads=1)
    correct = (readouts.predict(model, test, readouts.SETTINGS.batch_size) == test.labels).int()
    agree = np.mean([a == str(b) for a, b in zip(saved["runs"]["last/0"]["correct"], correct.tolist())])
    assert agree > 0.99


def test_common_tagger_loss_is_cross_entropy_over_every_position():
    from rnncourse.experiments import masking_tagger as tagger
    torch.manual_seed(0)
    logits = torch.randn(3, 5, 8)
    tags = torch.randint(7, (3, 5))
    mask = torch.arange(5)[None] < torch.tensor([5, 2, 1])[:, None]
    padded_tags = tags.masked_fill(~mask, 7)  # the padding labelled PAD, the extra class
    want = torch.nn.CrossEntropyLoss()(logits.reshape(-1, 8), padded_tags.reshape(-1))
    torch.testing.assert_close(tagger.every_position_loss(logits, tags, mask, pad_tag=7), want)


def test_tagger_variants_share_their_initial_weights_and_packing_changes_only_the_padding():
    from rnncourse.experiments import masking_tagger as tagger
    models = [tagger.build_model(v, seed=3) for v in tagger.VARIANTS]
    for m in models[1:]:
        for a, b in zip(models[0].parameters(), m.parameters()):
            assert torch.equal(a, b)
    batch = tagger.test_batch(tagger.SETTINGS.replace(test_size=6))
    with torch.no_grad():
        padded = models[1](batch.tokens, batch.lengths)  # (B, T, C), not packed
        packed = models[2](batch.tokens, batch.lengths)
    assert padded.shape == packed.shape
    # the backward direction differs where the padding was read first: not every real output agrees
    assert not torch.allclose(padded[batch.mask], packed[batch.mask])
    full = batch.lengths == batch.tokens.shape[1]  # the longest sentence has no padding after it
    torch.testing.assert_close(padded[full], packed[full])


def test_tagger_trains_through_a_given_masked_loss():
    from rnncourse.experiments import masking_tagger as tagger
    from rnncourse import masking
    calls = []

    def loss(logits, tags, mask):
        calls.append(mask.shape)
        return masking.masked_cross_entropy(logits, tags, mask)
    _, history, _ = tagger.train("masked", tagger.SETTINGS.replace(test_size=16), steps=3, loss_fn=loss, threads=1)
    assert len(calls) == 3 and history.steps == 3 and "accuracy" in history.evals[-1]
