"""The lesson-08 checks accept correct code however it is written and reject the
typical wrong variants with the right diagnosis; the sampler's check is
statistical, with a bound a correct sampler passes with overwhelming probability."""
import inspect
import math
import textwrap

import pytest
import torch

import rnncourse
from rnncourse.checks.core import CheckFailed
from rnncourse.checks.language_model import (
    DELTA, REPEATS, CALLS, SAMPLE_PLAN, _sample_variants, check_perplexity, check_sample_next,
    check_temperature_probs, check_train_stream, frequency_bound, reference_perplexity,
    reference_temperature_probs,
)
from rnncourse.checks.cases import build_cases, on_cpu64
from rnncourse.checks.language_model_tbptt import StreamLM, RecordingSGD, reference_loop

from _reject import assert_rejected
from classroom import wrong_language_model as w
from classroom.wrong import body
from classroom.wrong_language_model import LEARNERS, shared

CHECKS = {"perplexity": check_perplexity, "temperature_probs": check_temperature_probs,
          "sample_next": check_sample_next, "train_stream": check_train_stream}
RIGHT = {
    "perplexity": [w.perplexity_right, w.perplexity_indexing],
    "temperature_probs": [w.temperature_probs_right, w.temperature_probs_limit],
    "sample_next": [w.sample_next_multinomial, w.sample_next_inverse_cdf, w.sample_next_gumbel],
    "train_stream": [w.train_stream_right, w.train_stream_other_style],
}


@pytest.mark.parametrize("exercise,fn", [(e, f) for e, fns in RIGHT.items() for f in fns],
                         ids=lambda v: getattr(v, "__name__", v))
@pytest.mark.parametrize("hidden", [False, True])
def test_correct_code_passes(exercise, fn, hidden, capsys):
    CHECKS[exercise](fn, hidden=hidden)
    assert "cases pass" in capsys.readouterr().out


WRONG = [(e, s, fn, d) for e in CHECKS for s, (fn, d) in shared(e).items()]


@pytest.mark.parametrize("exercise,student,fn,diagnosis", WRONG, ids=[f"{e}-{s}" for e, s, _, _ in WRONG])
def test_wrong_code_is_named(exercise, student, fn, diagnosis):
    if student == "ppl_cpu_counts":
        # only a device other than the CPU shows it: the hidden 'meta' probe
        CHECKS[exercise](fn, hidden=False)
        assert_rejected(CHECKS[exercise], fn, diagnosis, exercise)
        return
    assert_rejected(CHECKS[exercise], fn, diagnosis, exercise, hidden=False)
    assert_rejected(CHECKS[exercise], fn, diagnosis, exercise, hidden=True)


def _as_notebook_cell(learner):
    """The learner's function rebuilt from its body in the notebook's namespace (torch, math,
    rnncourse), with the shared loop two of the wrong train_streams are written with."""
    params = str(inspect.signature(learner.fn))
    source = f"def {learner.exercise}{params}:\n" + textwrap.indent(body(learner.fn), "    ")
    namespace = {"torch": torch, "math": math, "rnncourse": rnncourse, "_train_stream": w._train_stream}
    exec(compile(source, f"<{learner.student}>", "exec"), namespace)
    return namespace[learner.exercise]


@pytest.mark.parametrize("exercise,student", [(e, s) for e in LEARNERS for s in LEARNERS[e]])
def test_a_learners_body_in_a_notebook_is_rejected_too(exercise, student):
    # the simulated class hands in bodies: defined in a notebook, not in this package's tests
    learner = LEARNERS[exercise][student]
    assert_rejected(CHECKS[exercise], _as_notebook_cell(learner), learner.diagnosis, exercise)


def test_every_wrong_variant_named_in_the_issue_has_a_learner():
    students = {s for e in CHECKS for s in shared(e)}
    assert {"ppl_exp_sum", "ppl_bits_in_nats", "ppl_counts_pads", "ppl_per_sequence",
            "temp_times_tau", "temp_after_softmax", "sample_times_tau", "sample_after_softmax",
            "sample_wrong_axis", "sample_argmax", "tbptt_reset", "tbptt_not_detached",
            "tbptt_not_shifted"} <= students


# ---------------------------------------------------------------- the references

def test_perplexity_reference_is_exp_of_torch_ignore_index_mean():
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 7, generator=gen, dtype=torch.float64)
    targets = torch.randint(0, 7, (3, 5), generator=gen)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0]], dtype=torch.bool)
    ppl, bits = reference_perplexity({"logits": logits, "targets": targets, "mask": mask})
    want = torch.nn.functional.cross_entropy(logits.reshape(-1, 7), targets.masked_fill(~mask, -100).reshape(-1),
                                             ignore_index=-100)
    assert torch.allclose(ppl, want.exp()) and torch.allclose(bits, want / math.log(2))
    # the uniform model's perplexity is the vocabulary size
    ppl_u, bits_u = reference_perplexity({"logits": torch.zeros(3, 5, 7, dtype=torch.float64),
                                          "targets": targets, "mask": mask})
    assert float(ppl_u) == pytest.approx(7) and float(bits_u) == pytest.approx(math.log2(7))


def test_temperature_limits():
    logits = torch.tensor([[0.3, 2.0, -1.0, 1.5]], dtype=torch.float64)
    assert torch.equal(reference_temperature_probs(logits, 0.0), torch.tensor([[0.0, 1.0, 0.0, 0.0]],
                                                                               dtype=torch.float64))
    assert torch.allclose(reference_temperature_probs(logits, 1e-3), reference_temperature_probs(logits, 0.0))
    assert torch.allclose(reference_temperature_probs(logits, 1e6), torch.full((1, 4), 0.25, dtype=torch.float64),
                          atol=1e-5)


# ---------------------------------------------------------------- the statistical bound

def test_the_bound_holds_for_a_correct_sampler_far_more_often_than_needed():
    # 60 seeded repetitions of the check's own experiment size, frequencies of exact
    # multinomial draws: every deviation stays inside the bound, and the largest one
    # uses well under the bound (it is set for a failure chance of DELTA per category)
    n = REPEATS * CALLS
    gen = torch.Generator().manual_seed(0)
    p = torch.softmax(torch.randn(4, 6, generator=gen, dtype=torch.float64) * 1.5, -1)
    worst = 0.0
    for _ in range(60):
        draws = torch.multinomial(p.repeat(n, 1), 1, replacement=True, generator=gen).view(n, 4)
        freq = torch.nn.functional.one_hot(draws, 6).double().mean(0)
        worst = max(worst, float(((freq - p).abs() / frequency_bound(p, n)).max()))
    assert worst < 0.75, worst
    assert DELTA * (3 * 7 * 7 + 4) < 1e-8  # a whole check, by the union bound


def test_each_wrong_distribution_is_far_outside_the_bound():
    # "fails by far": in the visible cases and again in the hidden ones, each wrong
    # variant's distribution differs from the right one by many bounds in some category
    # of some case (one failing case fails the check)
    n = REPEATS * CALLS
    for hidden in (False, True):
        best = {}
        for case in build_cases(hidden, SAMPLE_PLAN):
            logits, tau = on_cpu64(case)["logits"], case.args["tau"]
            p = reference_temperature_probs(logits, tau)
            for phrase, q in _sample_variants(logits, tau).items():
                margin = float(((q - p).abs() / frequency_bound(p, n)).max())
                best[phrase] = max(best.get(phrase, 0.0), margin)
        assert all(m > 5 for m in best.values()), best


# ---------------------------------------------------------------- truncated BPTT

def test_undetached_state_is_caught_at_the_second_chunk_without_a_long_run():
    calls = []

    def spy(model, optimizer, rows, T, state=None):
        original = model.forward

        def counted(x, s=None):
            calls.append(x.shape[1])
            return original(x, s)
        model.forward = counted
        return w.train_stream_not_detached(model, optimizer, rows, T, state)
    msg = assert_rejected(check_train_stream, spy, "carried but not detached", "train_stream", hidden=False,
                          first_case=True)
    assert len(calls) == 2 and "chunk 2" in msg  # refused on entering the second chunk


def test_reference_loop_with_lr_zero_carries_the_whole_stream_state():
    torch.manual_seed(0)
    model = StreamLM("LSTM", 5, 4, 6).double()
    rows = torch.randint(0, 5, (3, 23))
    _, state = reference_loop(model, RecordingSGD(model.parameters(), lr=0.0), rows, 4)
    with torch.no_grad():
        _, whole = model.rnn(model.embed(rows[:, :-1]))
    assert all(torch.allclose(a, b) for a, b in zip(state, whole))


def test_a_keep_graph_loop_fails_in_torch_with_an_optimizer_step_between_chunks():
    # what the lesson says happens to a learner who keeps the graph: backward through
    # the old graph after the optimizer changed the weights in place raises
    torch.manual_seed(0)
    model = StreamLM("LSTM", 5, 4, 6)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    rows = torch.randint(0, 5, (2, 13))
    state = None
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        for i in range(0, 12, 4):
            logits, state = torch.nn.Module.__call__(model.rnn, model.embed(rows[:, i:i + 4]), state)
            loss = model.head(logits).logsumexp(-1).mean()
            opt.zero_grad()
            loss.backward(retain_graph=True)
            opt.step()


def _train_stream_zeros_on_cpu(model, optimizer, rows, T, state=None):
    # a first state made without device=: right on a CPU, wrong where the model is on a GPU
    if state is None:
        B, H = rows.shape[0], model.rnn.hidden_size
        state = torch.zeros(1, B, H, dtype=model.head.weight.dtype)
        if isinstance(model.rnn, torch.nn.LSTM):
            state = (state, torch.zeros(1, B, H, dtype=model.head.weight.dtype))
    return w.train_stream_right(model, optimizer, rows, T, state)


def test_train_stream_device_mistake_fails_without_a_gpu():
    assert_rejected(check_train_stream, _train_stream_zeros_on_cpu, "without device=", "train_stream",
                    hidden=False)


def test_train_stream_right_state_on_the_models_device_passes():
    def right(model, optimizer, rows, T, state=None):
        if state is None:
            B, H, p = rows.shape[0], model.rnn.hidden_size, model.head.weight
            state = p.new_zeros(1, B, H)
            if isinstance(model.rnn, torch.nn.LSTM):
                state = (state, p.new_zeros(1, B, H))
        return w.train_stream_right(model, optimizer, rows, T, state)
    check_train_stream(right)
    check_train_stream(right, hidden=True)
