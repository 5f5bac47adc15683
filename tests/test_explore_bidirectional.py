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
    context_explorer, cut_curve, draw_context, first_ambiguous, reading_masks, static_figure,
    tag_probabilities,
)


@pytest.fixture(scope="module")
def tagger():
    return load_tagger()


@pytest.fixture(scope="module")
def sentence():
    pool = tagging.tagging_sentences(40, 2024).tokens
    return next(s for s in pool if first_ambiguous(s) is not None and len(s) >= 8)


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
    assert before.max() < 0.9  # before it: unsure, near the word's prior


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
