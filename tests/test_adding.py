"""The adding problem's generator and lesson 03's saved checkpoints."""
import pytest
import torch

from rnncourse.data.adding import CONSTANT_MSE, AddingStream, adding_batch, constant_mse
from rnncourse.experiments import adding


def test_shapes_markers_and_targets():
    x, y = adding_batch(50, 12, generator=3)
    assert x.shape == (50, 12, 2) and y.shape == (50,) and x.dtype == torch.float32
    assert torch.all((x[..., 0] >= 0) & (x[..., 0] <= 1))
    markers = x[..., 1]
    assert torch.all(markers.sum(dim=1) == 2)  # exactly two marked steps
    assert torch.all(markers[:, :6].sum(dim=1) == 1) and torch.all(markers[:, 6:].sum(dim=1) == 1)
    assert torch.allclose(y, (x[..., 0] * markers).sum(dim=1))


def test_seeded_and_offline():
    a, b = adding_batch(8, 10, generator=5), adding_batch(8, 10, generator=5)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], adding_batch(8, 10, generator=6)[0])
    x64, _ = adding_batch(8, 10, generator=5, dtype=torch.float64)
    assert x64.dtype == torch.float64 and torch.allclose(x64.float(), a[0])


def test_always_answering_one_gives_a_sixth():
    # Var(a + b) for two independent U(0, 1) values: 2/12
    _, y = adding_batch(200_000, 4, generator=0, dtype=torch.float64)
    assert CONSTANT_MSE == pytest.approx(1 / 6)
    assert constant_mse(y) == pytest.approx(1 / 6, abs=2e-3)
    assert constant_mse(y, 1.0) < constant_mse(y, 0.9) and constant_mse(y, 1.0) < constant_mse(y, 1.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="T >= 2"):
        adding_batch(4, 1)
    with pytest.raises(TypeError):
        adding_batch(4, 5, generator="seed")


def test_stream_gives_fresh_batches_and_restarts():
    stream = AddingStream(4, 6, seed=1)
    first = [b[0] for _, b in zip(range(3), stream)]
    again = [b[0] for _, b in zip(range(3), stream)]
    assert not torch.equal(first[0], first[1])
    assert all(torch.equal(a, b) for a, b in zip(first, again))


@pytest.fixture(scope="module")
def fresh():
    return adding_batch(512, adding.SETTINGS.T, generator=2024)  # data no checkpoint was trained on


def test_checkpoints_load_and_the_lstm_solves_it_where_the_rnn_does_not(fresh):
    x, y = fresh
    lstm, rec_lstm = adding.load("lstm")
    rnn, rec_rnn = adding.load("rnn")
    assert rec_lstm["config"] == rec_rnn["config"]  # the same budget for both
    assert len(rec_lstm["losses"]) == len(rec_rnn["losses"]) == rec_lstm["config"]["steps"]
    assert adding.mse(lstm, x, y) < 0.2 * CONSTANT_MSE  # well below 1/6
    assert adding.mse(rnn, x, y) > 0.8 * CONSTANT_MSE  # near the constant answer


def test_checkpoints_are_small():
    for kind in adding.SAVED:
        assert adding.checkpoint(kind).stat().st_size < 200_000


def test_saved_settings_are_the_dataclass_defaults():
    # the dataclass replaced a dict of settings: the saved runs must still read as the same
    for kind in adding.SAVED:
        model, record = adding.load(kind)
        assert model.kind == kind and record["kind"] == kind.lower()  # files say "rnn", "lstm"
        assert adding.AddingSettings.from_dict(record["config"]) == adding.SETTINGS
        assert adding.SETTINGS.to_dict() == record["config"]  # what save() would write


def test_load_accepts_the_kind_in_any_case():
    assert adding.load("LSTM")[0].kind == adding.load("lstm")[0].kind == "LSTM"


def test_missing_checkpoint_says_how_to_regenerate(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m rnncourse.experiments.adding"):
        adding.load("lstm", tmp_path)


def test_short_training_run_saves_and_loads(tmp_path):
    settings = adding.SETTINGS.replace(batch_size=4, eval_size=16)
    model, history, _ = adding.train("RNN", settings, steps=3, T=8, progress=False)
    adding.save(tmp_path / "rnn.pt", model, history, 0.1, settings.replace(steps=3, T=8))
    loaded, record = adding.load("rnn", tmp_path)
    assert len(record["losses"]) == 3 and record["eval_steps"].tolist()[-1] == 3
    x, y = adding_batch(4, 8, generator=1)
    assert adding.mse(loaded, x, y) == pytest.approx(adding.mse(model, x, y), rel=1e-6)


@pytest.mark.parametrize("kind", ["RNN", "LSTM"])
def test_saved_runs_are_what_train_makes(kind):
    # the first steps of each saved run, retrained from SETTINGS: the same losses up to
    # float summation order, so the settings dataclass trains what the dict trained
    _, record = adding.load(kind)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _, history, _ = adding.train(kind, steps=20, progress=False)
    finally:
        torch.set_num_threads(before)
    assert history.losses == pytest.approx(record["losses"][:20].tolist(), rel=1e-4)
