"""The lesson-06 exploration's logic, called as plain functions, on the saved tagger."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.data import tagging  # noqa: E402
from rnncourse.experiments.bidirectional import load_tagger  # noqa: E402
from rnncourse.explore.bidirectional import (  # noqa: E402
    context_explorer, cut_curve, draw_context, example_sentences, first_ambiguous, reading_masks, static_figure,
    tag_probabilities,
)


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


@pytest.fixture(scope="module")
def sentence():
    return example_sentences()[0]


def test_reading_masks():
    fw, bw = reading_masks(4)
    assert fw.shape == bw.shape == (4, 4)
    assert fw[2].tolist() == [True, True, True, False] and bw[2].tolist() == [False, False, True, True]
    assert (fw | bw).all() and (fw & bw).sum() == 4  # both have read x_t itself, and together everything


def test_cutting_keeps_the_left_and_is_a_distribution(tagger, sentence):
    L = len(sentence)
    full = tag_probabilities(tagger, sentence)
    assert full.shape == (L, tagging.num_tags())
    assert torch.allclose(full.sum(-1), torch.ones(L), atol=1e-5)
    cut = tag_probabilities(tagger, sentence, keep=3)
    assert cut.shape == (3, tagging.num_tags())
    # the trained tagger tags the whole sentence right
    assert torch.equal(full.argmax(-1), tagging.full_context_tags(sentence))
    with pytest.raises(ValueError, match="keep"):
        tag_probabilities(tagger, sentence, keep=0)


def test_resolver_decides_the_ambiguous_word(tagger, sentence):
    t = first_ambiguous(sentence)
    u = tagging.resolver_position(sentence)[t]
    curve = cut_curve(tagger, sentence, t)  # index k: read up to position t + k
    assert len(curve) == len(sentence) - t
    before, after = curve[: u - t], curve[u - t:]
    assert after.min() > 0.95  # the resolver read: the true tag
    assert before.max() < after.min()  # before it, not (it may even be confidently wrong)
    # a batched curve equals one cut at a time
    assert np.allclose(curve, [float(tag_probabilities(tagger, sentence, k)[t, tagging.full_context_tags(sentence)[t]])
                               for k in range(t + 1, len(sentence) + 1)], atol=1e-6)


def test_example_sentences_fit_a_figure():
    sentences = example_sentences()
    assert len(sentences) == 20
    assert all(6 <= len(s) <= 12 and first_ambiguous(s) >= 1 for s in sentences)


def _pixels(model, sentence, t, keep):
    fig = plt.figure(figsize=(12, 3.2))
    draw_context(fig, model, sentence, t, keep)
    fig.canvas.draw()
    px = np.asarray(fig.canvas.buffer_rgba()).copy()
    plt.close(fig)
    return px


def test_figure_follows_the_controls(tagger, sentence):
    t = first_ambiguous(sentence)
    base = _pixels(tagger, sentence, t, len(sentence))
    assert not np.array_equal(base, _pixels(tagger, sentence, t, t + 1))
    assert not np.array_equal(base, _pixels(tagger, sentence, len(sentence) - 1, len(sentence)))
    figs = static_figure(tagger, sentence)
    assert len(figs) == 2
    for f in figs:
        plt.close(f)


def test_explorer_widget_builds_and_redraws(tagger):
    import ipywidgets as widgets
    box = context_explorer(tagger)
    assert isinstance(box, widgets.VBox)
    which, t, keep = box.children[0].children
    out = box.children[1]
    first = out.outputs
    keep.value = max(1, keep.value - 3)
    assert out.outputs != first
    which.value = 1  # a new sentence resets the position and the cut to fit it
    assert t.max == keep.max - 1 and keep.value == keep.max


# ---------------------------------------------------------------- the saved runs (data/bidirectional)

from rnncourse.experiments import bidirectional as experiment  # noqa: E402


def test_saved_results_follow_the_settings_and_the_claims():
    results = experiment.load_results()
    assert experiment.BidirectionalSettings.from_dict(results["config"]) == experiment.SETTINGS
    test = experiment.test_set()
    assert results["ceiling"] == pytest.approx(test.ceiling, abs=1e-12)
    assert results["expected_ceiling"] == pytest.approx(tagging.expected_ceiling(), abs=1e-12)
    runs = results["direction"]
    assert {(r["kind"], r["seed"]) for r in runs.values()} == {
        (k, s) for k in experiment.KINDS for s in experiment.SETTINGS.seeds}
    params = {r["kind"]: r["parameters"] for r in runs.values()}
    assert abs(params["uni_wide"] - params["bi"]) / params["bi"] < 0.01  # a fair fight
    for r in runs.values():  # what lesson 06 says: one direction stops at the ceiling, two pass it
        if r["kind"] == "bi":
            assert r["final"]["accuracy"] > results["ceiling"] + 0.05
        else:
            assert abs(r["final"]["accuracy"] - results["ceiling"]) < 0.005
    depth = results["depth"]
    assert {(r["layers"], r["seed"]) for r in depth.values()} == {
        (d, s) for d in experiment.SETTINGS.depths for s in experiment.SETTINGS.depth_seeds}


def test_saved_tagger_is_the_seed_0_bidirectional_run():
    model = experiment.load_tagger()
    acc = experiment.accuracy(model, experiment.test_set())
    assert acc["accuracy"] == pytest.approx(experiment.load_results()["direction"]["bi/0"]["final"]["accuracy"])


def test_retraining_reproduces_the_start_of_a_saved_run():
    saved = experiment.load_results()["direction"]["uni/1"]
    settings = experiment.SETTINGS.replace(steps=50)
    _, history, _ = experiment.train("uni", settings, seed=1, threads=1)
    steps, acc = history.metric("accuracy")
    assert steps[0] == saved["steps"][0] == 50
    assert acc[0] == pytest.approx(saved["accuracy"][0], abs=2e-3)
