"""rnncourse.diagrams: the cell pictures of lessons 01, 04 and 05 name every gate and path."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from rnncourse import diagrams  # noqa: E402


def _text(fig):
    return " ".join(diagrams.labels(fig))


@pytest.fixture(autouse=True)
def close_all():
    yield
    plt.close("all")


def test_unrolled_rnn_shows_every_step_and_the_shared_weights():
    text = _text(diagrams.unrolled_rnn(T=5))
    for t in range(1, 6):
        assert f"$x_{t}$" in text and f"$h_{t}$" in text and f"step {t}" in text
    assert "$h_0$" in text and "$W_{hh}$" in text and "same weights" in text


@pytest.mark.parametrize("T", [0, -1])
def test_unrolled_rnn_needs_a_step(T):
    with pytest.raises(ValueError, match="T"):
        diagrams.unrolled_rnn(T=T)


def test_lstm_cell_labels_its_gates_and_states():
    text = _text(diagrams.lstm_cell())
    for name in ("forget gate", "input gate", "output gate", "candidate", "$c_{t-1}$", "$c_t$",
                 "$h_{t-1}$", "$h_t$", "c_t = f_t \\odot c_{t-1} + i_t \\odot g_t"):
        assert name in text, name


def test_gru_cell_labels_its_gates_in_pytorchs_form():
    text = _text(diagrams.gru_cell())
    for name in ("reset gate", "update gate", "candidate", "$1 - z_t$", "$h_{t-1}$", "$h_t$"):
        assert name in text, name
    # the reset gate multiplies the recurrent term after the matmul, bias included
    assert "r_t \\odot (W_{hn} h_{t-1} + b_{hn})" in text
    assert "h_t = (1 - z_t) \\odot n_t + z_t \\odot h_{t-1}" in text


def test_usage_patterns_name_each_use_and_limit():
    fig = diagrams.usage_patterns()
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == list(diagrams.PATTERNS)
    text = _text(fig)
    assert text.count("use: ") == 4 and text.count("limit: ") == 4


def test_diagrams_draw_without_error():
    for make in (diagrams.unrolled_rnn, diagrams.lstm_cell, diagrams.gru_cell, diagrams.usage_patterns):
        fig = make()
        fig.canvas.draw()
        assert fig.axes
