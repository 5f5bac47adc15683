"""The lesson-08 exploration's logic as plain functions, the saved runs, and the experiment's loop."""
import matplotlib

matplotlib.use("Agg")

import math  # noqa: E402

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from rnncourse.data.text import Vocab  # noqa: E402
from rnncourse.experiments import language_model as lm  # noqa: E402
from rnncourse.explore.language_model import (  # noqa: E402
    entropy_of, find_units, generate, keep_graph_errors, plot_sweep, run_states, sample_html,
    samples_by_temperature, static_figure, sweep_table, temperature_explorer, temperature_probs,
    text_features,
)

VOCAB = Vocab("abc ()$")


def tiny_model(seed=0):
    torch.manual_seed(seed)
    return lm.CharLM("LSTM", len(VOCAB), 4, 6, impl="rnncourse").eval()


def test_temperature_probs_limits_and_entropy():
    z = torch.tensor([[1.0, 3.0, 2.0]], dtype=torch.float64)
    assert torch.equal(temperature_probs(z, 0.0), torch.tensor([[0.0, 1.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(temperature_probs(z, 1.0), torch.softmax(z, -1))
    assert float(entropy_of(temperature_probs(z, 1e6))) == pytest.approx(math.log2(3), abs=1e-6)
    assert float(entropy_of(temperature_probs(z, 0.0))) == 0.0
    with pytest.raises(ValueError):
        temperature_probs(z, -1.0)


def test_generate_is_seeded_and_its_entropy_grows_with_tau():
    m = tiny_model()
    a = generate(m, VOCAB, "ab", 30, 1.0, torch.Generator().manual_seed(3))
    b = generate(m, VOCAB, "ab", 30, 1.0, torch.Generator().manual_seed(3))
    assert a["text"] == b["text"] and len(a["text"]) == 30 and set(a["text"]) <= set(VOCAB.chars)
    s = samples_by_temperature(m, VOCAB, "ab", taus=(0.0, 0.5, 1.0, 2.0), n=40)
    ent = [v["entropy"].mean() for v in s.values()]
    assert ent[0] == 0 and ent == sorted(ent)
    # greedy is deterministic whatever the seed
    assert generate(m, VOCAB, "a", 20, 0.0, torch.Generator().manual_seed(1))["text"] == \
        generate(m, VOCAB, "a", 20, 0.0, torch.Generator().manual_seed(2))["text"]


def test_sample_continues_the_prefix_with_the_carried_state():
    # one step of generate after "ab" uses the state after "ab": same as the model on "ab"
    m = tiny_model()
    out = generate(m, VOCAB, "ab", 1, 0.0)
    with torch.no_grad():
        logits, _ = m(VOCAB.encode("ab").unsqueeze(0))
    assert out["text"] == VOCAB.chars[int(logits[0, -1].argmax())]


def test_run_states_match_the_model_over_the_whole_text():
    m = tiny_model()
    ids = VOCAB.encode("ab (c$a) ba")
    s = run_states(m, ids)
    with torch.no_grad():
        out, _ = m.rnn(m.embed(ids.unsqueeze(0)))
    np.testing.assert_allclose(s["h"], out[0].numpy(), atol=1e-6)
    assert s["c"].shape == s["h"].shape == (ids.numel(), 6)


def test_text_features_by_hand():
    f = text_features("ab (c$a$) x\nab")
    assert f["position in word"].tolist() == [1, 2, 0, 0, 1, 0, 1, 0, 0, 0, 1, 0, 1, 2]
    assert f["inside ( )"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0]
    assert f["inside $ $"].tolist() == [0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0]
    assert f["position in line"].tolist()[-3:] == [0, 1, 2]


def test_find_units_finds_a_planted_unit():
    rng = np.random.default_rng(0)
    feature = rng.normal(size=500)
    states = rng.normal(size=(500, 8))
    states[:, 5] = -0.9 * feature + 0.1 * rng.normal(size=500)
    unit, corr = find_units(states, {"f": feature})["f"]
    assert unit == 5 and corr < -0.95


def test_keep_graph_errors_are_what_torch_raises():
    e = keep_graph_errors()
    assert "second time" in e["no retain_graph"]
    assert "inplace" in e["retain_graph=True"]
    assert keep_graph_errors("GRU")["retain_graph=True"] is not None


def fake_results():
    sweep = {}
    for kind, base in (("RNN", 1.8), ("LSTM", 1.7), ("GRU", 1.65)):
        for T in (1, 4, 16):
            for seed in (0, 1):
                sweep[f"{kind}/{T}/{seed}"] = {"kind": kind, "T": T, "seed": seed,
                                               "val_bits": base - 0.1 * math.log2(T) / 4 + 0.01 * seed}
    return {"sweep": sweep}


def test_sweep_table_and_plot():
    t = sweep_table(fake_results())
    Ts, mean, per = t["LSTM"]
    assert Ts == [1, 4, 16] and per.shape == (2, 3)
    np.testing.assert_allclose(mean[0], 1.705)
    fig, ax = plt.subplots()
    plot_sweep(ax, fake_results(), limit=1.5)
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title()
    plt.close(fig)


def test_static_figure_has_labelled_axes():
    fig = static_figure(tiny_model(), VOCAB, "ab", taus=(0.0, 1.0, 2.0), n=20)
    ax = fig.axes[0]
    assert ax.get_xlabel() and ax.get_ylabel() and ax.get_title() and len(ax.lines) >= 2
    plt.close(fig)


def test_explorer_builds_and_every_control_changes_the_text():
    import ipywidgets as widgets
    box = temperature_explorer(tiny_model(), VOCAB, prefix="ab", n=40)
    tau, prefix, again = box.children[0].children
    out = box.children[1]
    assert isinstance(out, widgets.HTML) and "entropy" in out.value
    before = out.value
    tau.value = 1.7
    assert out.value != before
    before = out.value
    prefix.value = "(c"
    assert out.value != before and "<b>(c</b>" in out.value
    before = out.value
    again.click()
    assert out.value != before
    assert plt.get_fignums() == []


def test_sample_html_escapes():
    s = {"text": "<b>", "entropy": np.array([1.0]), "bits": np.array([2.0])}
    assert "&lt;b&gt;" in sample_html(s, "&", 1.0) and "&amp;" in sample_html(s, "&", 1.0)


# ---------------------------------------------------------------- the experiment and its saved runs

def test_saved_runs_load_with_the_current_settings():
    results = lm.load_results()
    assert lm.LMSettings.from_dict(results["config"]) == lm.SETTINGS
    for name in ("synthetic", "prose"):
        model = lm.load_model(name)
        info = results["models"][name]
        assert isinstance(model.rnn, __import__("rnncourse").LSTM)
        assert len(info["vocab"]) == model.head.out_features
    assert len(results["sweep"]) == len(lm.SETTINGS.sweep_T) * 3 * len(lm.SETTINGS.seeds)


def test_saved_synthetic_model_scores_what_its_run_recorded():
    syn = lm.synthetic_corpus()
    model = lm.load_model("synthetic")
    saved = min(lm.load_results()["models"]["synthetic"]["val_bits"])
    assert lm.bits_per_char(model, syn["val"]) == pytest.approx(saved, abs=2e-4)
    # the reference LSTM and torch.nn.LSTM agree on the loaded weights
    twin = lm.load_model("synthetic", impl="torch")
    assert lm.bits_per_char(twin, syn["val"][:5000]) == pytest.approx(lm.bits_per_char(model, syn["val"][:5000]),
                                                                     abs=1e-5)


def test_train_retraces_the_start_of_a_saved_sweep_run_and_uses_detach():
    # the first evaluation of the sweep's LSTM at T = 4, seed 0, retrained for its whole
    # (short) budget would take seconds; a shortened run of the same loop must train
    syn = lm.synthetic_corpus()
    model, history, _ = lm.train("LSTM", syn["train"], syn["val"][:4000], 9, hidden=16, chars=20_000,
                                 T=4, seed=0, batch_size=32, threads=1)
    assert history["val_bits"][-1] < math.log2(9)  # learned something in 20k characters
    assert not model.training


def test_only_prose_refreshes_the_snapshot_and_retrains_that_model_alone(tmp_path, capsys):
    import dataclasses
    import json

    from rnncourse.data.text import course_prose
    tiny = dataclasses.replace(lm.SETTINGS, hidden_prose=8, chars_prose=4096, eval_every_chars=2048)
    kept = {"config": tiny.to_dict(), "regenerate": "", "models": {"synthetic": {"kept": 1}}, "sweep": {"k": 2}}
    (tmp_path / "results.json").write_text(json.dumps(kept))
    lm.run(tiny, tmp_path, log=lambda *a: None, only=("prose",))
    written = (tmp_path / "prose.txt").read_text()
    assert written == course_prose("solutions")[0]
    results = lm.load_results(tmp_path)
    assert results["models"]["synthetic"] == {"kept": 1} and results["sweep"] == {"k": 2}
    assert results["models"]["prose"]["text_sha256"] == lm.text_sha256(written)
    assert (tmp_path / "prose_lstm.pt").exists()
    # a partial run refuses runs saved with other settings, and names only known parts
    with pytest.raises(ValueError, match="other settings"):
        lm.run(lm.SETTINGS, tmp_path, log=lambda *a: None, only=("prose",))
    with pytest.raises(ValueError, match="only must name"):
        lm.run(tiny, tmp_path, only=("prose", "sweeps"))


def test_char_lm_is_the_same_function_on_both_implementations():
    torch.manual_seed(0)
    ours = lm.CharLM("GRU", 7, 4, 5, impl="rnncourse").double()
    theirs = lm.CharLM("GRU", 7, 4, 5, impl="torch").double()
    theirs.load_state_dict(ours.state_dict())
    x = torch.randint(0, 7, (3, 6))
    (a, sa), (b, sb) = ours(x), theirs(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(sa, sb)
    with pytest.raises(ValueError, match="impl"):
        lm.CharLM("GRU", 7, 4, 5, impl="cudnn")
