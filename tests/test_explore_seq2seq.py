"""The lesson-09 exploration: beam search on a tiny probability table, as plain functions."""
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.decoding import beam_search  # noqa: E402
from rnncourse.explore.seq2seq import (  # noqa: E402
    MAX_LEN, TABLE, TOKENS, beam_explorer, best_output, draw_tree, log_prob, outputs, static_figure,
    trace_beam,
)


def test_table_rows_are_distributions():
    for prefix, row in TABLE.items():
        assert len(row) == len(TOKENS) and sum(row) == pytest.approx(1.0), prefix
    assert sum(math.exp(log_prob(s)) for s in outputs()) == pytest.approx(1.0)


def _package(K, alpha):
    """The package's batched beam search on the same table (state: the prefix's index)."""
    prefixes = sorted(TABLE, key=lambda p: (len(p), p))
    logits = torch.tensor([TABLE[p] for p in prefixes], dtype=torch.float64).log()  # (P, 3)
    V = len(TOKENS)

    def step(y, state):
        idx, t = state[:, 0].long(), state[:, 1].long()  # prefix index, step
        # the child prefix = parent + token (BOS at step 0 keeps the root)
        child = [prefixes[int(i)] + (TOKENS[int(v) - 3] if int(tt) > 0 else "")
                 for i, v, tt in zip(idx, y, t)]
        rows = [prefixes.index(c) if c in TABLE else 0 for c in child]
        full = torch.full((len(rows), V + 3), float("-inf"), dtype=torch.float64)
        full[:, 3:] = logits[rows]
        return full, torch.stack([torch.tensor(rows, dtype=torch.float64), t.double() + 1], 1)

    out = beam_search(step, torch.zeros(1, 2, dtype=torch.float64), lambda s, i: s[i], 1, K, MAX_LEN,
                      alpha=alpha, bos=1, eos=5)
    ids = out.tokens[0, :out.lengths[0]].tolist()
    return "".join(TOKENS[i - 3] for i in ids), float(out.scores[0])


@pytest.mark.parametrize("alpha", [0.0, 0.5, 1.0])
@pytest.mark.parametrize("K", [1, 2, 3, 6])
def test_trace_equals_the_package_beam_search(K, alpha):
    tr = trace_beam(K, alpha)
    answer, score = _package(K, alpha)
    assert tr.answer == answer and tr.answer_score == pytest.approx(score)


def test_the_table_shows_what_the_lesson_says():
    # greedy misses the better outputs that start with "b"
    assert trace_beam(1, 1.0).answer == "aaa"
    assert log_prob("baE") > log_prob("aaa")
    assert trace_beam(2, 1.0).answer == "baE" == best_output(1.0)[0]
    # without normalisation the one-token output wins once the beam is wide enough to keep it
    assert trace_beam(2, 0.0).answer == "baE" and trace_beam(3, 0.0).answer == "E" == best_output(0.0)[0]
    # a beam that covers every hypothesis is exhaustive search
    for alpha in (0.0, 0.5, 1.0):
        assert trace_beam(27, alpha).answer == best_output(alpha)[0]
    # the beam shrinks by one per finished hypothesis
    tr = trace_beam(3, 0.0)
    assert [s["width"] for s in tr.steps] == [3, 2, 2][:len(tr.steps)]


def test_figures_and_widget():
    fig, ax = plt.subplots()
    tr = draw_tree(ax, 2, 1.0)
    assert "baE" in ax.get_title() and tr.answer == "baE"
    plt.close(fig)
    plt.close(static_figure())
    box = beam_explorer()
    width, alpha = box.children[0].children
    out = box.children[1]
    before = out.outputs[0]["data"]["image/png"]
    width.value = 1
    assert out.outputs[0]["data"]["image/png"] != before
    with pytest.raises(ValueError):
        trace_beam(0, 1.0)
