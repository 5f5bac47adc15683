"""rnncourse.data.recall (lesson 05's task) and the saved long-range results
that lesson 05 loads (data/longrange/, from rnncourse.experiments.longrange)."""
import math

import pytest
import torch

from rnncourse.data.recall import recall_batch, recall_batches, recall_tokens, vocab_size
from rnncourse.experiments import longrange
from rnncourse.kinds import KINDS


def test_target_is_the_first_symbol_and_the_rest_are_distractors():
    x, y = recall_tokens(50, 12, num_symbols=3, num_distractors=5, generator=1)
    assert x.shape == (50, 12) and y.shape == (50,)
    assert torch.equal(x[:, 0], y)
    assert ((y >= 0) & (y < 3)).all()
    assert ((x[:, 1:] >= 3) & (x[:, 1:] < 8)).all()


def test_seeded_and_reproducible():
    a = recall_tokens(8, 20, generator=7)
    b = recall_tokens(8, 20, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    assert not torch.equal(a[0], recall_tokens(8, 20, generator=8)[0])


def test_one_hot_batch():
    x, y = recall_batch(4, 6, generator=0)
    assert x.shape == (4, 6, vocab_size()) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert torch.equal(x.sum(-1), torch.ones(4, 6))
    assert torch.equal(x[:, 0].argmax(-1), y)


def test_batches_are_fresh():
    batches = recall_batches(3, 16, 5, seed=2)
    assert len(batches) == 3
    assert not torch.equal(batches[0][0], batches[1][0])


def test_rejects_bad_sizes():
    with pytest.raises(ValueError):
        recall_tokens(4, 0)
    with pytest.raises(ValueError):
        recall_tokens(4, 5, num_symbols=1)


def test_lstm_gets_the_same_intent_keep_and_write_little():
    # the GRU's z both keeps and closes the write; the LSTM needs f raised AND i lowered
    H = longrange.SETTINGS.hidden_size
    lstm = longrange.build_model("LSTM")
    torch.manual_seed(0)
    plain = longrange.RecallModel("LSTM", H)
    delta = (lstm.rnn.bias_ih_l0.detach() - plain.rnn.bias_ih_l0.detach()).view(4, H)  # rows i, f, g, o
    assert longrange.SETTINGS.write_bias < 0 < longrange.SETTINGS.keep_bias
    torch.testing.assert_close(delta[0], torch.full((H,), longrange.SETTINGS.write_bias))
    torch.testing.assert_close(delta[1], torch.full((H,), longrange.SETTINGS.keep_bias))
    assert torch.equal(delta[2:], torch.zeros(2, H))
    x = recall_batch(4, 3, generator=0)[0]
    with torch.no_grad():  # at the start the input gate writes about sigma(-3) of the candidate
        gates = x[:, 0] @ lstm.rnn.weight_ih_l0.T + lstm.rnn.bias_ih_l0 + lstm.rnn.bias_hh_l0  # (B, 4H)
    assert torch.sigmoid(gates[:, :H]).mean() < 0.15 and torch.sigmoid(gates[:, H:2 * H]).mean() > 0.85


def test_retraining_one_kind_keeps_the_others(tmp_path):
    small = longrange.SETTINGS.replace(lengths=(4,), seeds=(0,), steps=4, eval_every=2, eval_size=8,
                                       checkpoint_T=4)
    longrange.run(small, tmp_path, log=lambda *a: None)
    before = longrange.load_results(tmp_path)["runs"]
    longrange.run(small.replace(write_bias=-1.0), tmp_path, log=lambda *a: None, kinds=("LSTM",))
    after = longrange.load_results(tmp_path)
    assert list(after["runs"]) == list(before)  # same runs, same order
    assert after["runs"]["GRU/4/0"] == before["GRU/4/0"] and after["runs"]["RNN/4/0"] == before["RNN/4/0"]
    assert after["config"]["write_bias"] == -1.0
    with pytest.raises(ValueError, match="steps"):  # would leave the GRU and RNN runs out of date
        longrange.run(small.replace(steps=6), tmp_path, log=lambda *a: None, kinds=("LSTM",))


def test_model_keep_bias_opens_the_keep_gates():
    H = longrange.SETTINGS.hidden_size
    gru = longrange.build_model("GRU")
    torch.manual_seed(0)
    plain = longrange.RecallModel("GRU", H)
    delta = gru.rnn.bias_ih_l0.detach() - plain.rnn.bias_ih_l0.detach()
    assert torch.allclose(delta[H:2 * H], torch.full((H,), longrange.SETTINGS.keep_bias))  # z's rows
    assert torch.equal(delta[:H], torch.zeros(H)) and torch.equal(delta[2 * H:], torch.zeros(H))
    out = gru(recall_batch(5, 7, generator=0)[0])
    assert out.shape == (5, longrange.SETTINGS.num_symbols)


@pytest.fixture
def one_thread():
    # tiny models train faster on one thread than on two that wait for each other
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_a_short_training_run_learns_something(one_thread):
    settings = longrange.SETTINGS.replace(eval_every=20)
    model, history, _ = longrange.train("GRU", settings, T=5, steps=60)
    steps, acc = history.metric("accuracy")
    assert steps[-1] == 60 and acc[-1] > 0.5


# ---------------------------------------------------------------- the committed results

@pytest.fixture(scope="module")
def results():
    return longrange.load_results()


def test_results_cover_every_model_length_and_seed(results):
    cfg = results["config"]
    assert results["regenerate"] == "python -m rnncourse.experiments.longrange"
    for kind in KINDS:
        for T in cfg["lengths"]:
            for seed in cfg["seeds"]:
                run = results["runs"][f"{kind}/{T}/{seed}"]
                assert run["steps"] == list(range(cfg["eval_every"], cfg["steps"] + 1, cfg["eval_every"]))
                assert len(run["accuracy"]) == len(run["steps"])
                assert all(0 <= a <= 1 and not math.isnan(a) for a in run["accuracy"])


def test_saved_settings_are_the_dataclass_defaults(results):
    # the dataclass replaced a dict of settings: results.json must still read as the same
    assert longrange.LongRangeSettings.from_dict(results["config"]) == longrange.SETTINGS
    assert longrange.SETTINGS.to_dict() == results["config"]  # what run() would write


def test_results_are_what_the_script_makes(one_thread):
    # the start of one saved run, retrained from its seed: the same curve up to float
    # summation order
    saved = longrange.load_results()["runs"]["RNN/25/0"]  # 0.20, 0.52, 1.0
    _, history, _ = longrange.train("RNN", T=25, steps=150, seed=0)
    assert history.metric("accuracy")[1] == pytest.approx(saved["accuracy"][:3], abs=0.02)


def test_checkpoint_loads_and_solves_its_length():
    model = longrange.load_gru()
    T = longrange.SETTINGS.checkpoint_T
    x, y = recall_batch(256, T, generator=555)
    with torch.no_grad():
        acc = (model(x).argmax(1) == y).float().mean().item()
    assert acc > 0.9
