"""The lesson-07 checks accept correct code however it is written (looped or
vectorised, float32 or float64, torch's own functions where the exercise allows
them) and reject the typical wrong variants by name: pad_batch,
masked_cross_entropy, last_valid, masked_mean."""
import sys
import warnings

import pytest
import torch

from _reject import assert_rejected
from classroom.wrong import shared
from rnncourse import masking
from rnncourse.checks.core import CheckFailed
from rnncourse.checks.masking import (
    LAST_PLAN, LOSS_PLAN, MEAN_PLAN, PAD_PLAN, check_last_valid, check_masked_cross_entropy,
    check_masked_mean, check_pad_batch, draw_lengths,
)
from rnncourse.checks.cases import build_cases

F = torch.nn.functional


# ---------------------------------------------------------------- pad_batch

def pad_loop(sequences, pad_value=0):
    first = sequences[0]
    T = max(len(s) for s in sequences)
    padded = first.new_full((len(sequences), T, *first.shape[1:]), pad_value)
    mask = torch.zeros(len(sequences), T, dtype=torch.bool, device=first.device)
    for b, s in enumerate(sequences):
        padded[b, :len(s)] = s
        mask[b, :len(s)] = True
    return padded, mask.sum(1), mask


def pad_torch(sequences, pad_value=0):
    padded = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True, padding_value=pad_value)
    lengths = torch.tensor([s.shape[0] for s in sequences], device=padded.device)
    mask = torch.arange(padded.shape[1], device=padded.device) < lengths.unsqueeze(1)
    return padded, lengths, mask


def pad_cat(sequences, pad_value=0):
    # each row built by concatenation, lengths moved to the device at the end
    T = max(s.shape[0] for s in sequences)
    rows = [torch.cat([s, s.new_full((T - s.shape[0], *s.shape[1:]), pad_value)]) for s in sequences]
    lengths = torch.tensor([s.shape[0] for s in sequences]).to(sequences[0].device)
    mask = torch.stack([torch.arange(T).to(lengths.device) < L for L in lengths])
    return torch.stack(rows), lengths, mask


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [pad_loop, pad_torch, pad_cat])
def test_pad_batch_accepts_correct_code(fn, hidden):
    check_pad_batch(fn, hidden=hidden)


def test_pad_batch_accepts_a_named_tuple():
    from collections import namedtuple
    Batch = namedtuple("Batch", "padded lengths mask")
    check_pad_batch(lambda s, v=0: Batch(*pad_torch(s, v)), hidden=True)


WRONG_PADS = {
    "lengths off by one": (lambda s, v=0: (pad_torch(s, v)[0], pad_torch(s, v)[1] - 1, pad_torch(s, v)[2]),
                           "lengths are one less than the number of tokens"),
    "pad value ignored": (lambda s, v=0: pad_torch(s, 0), "the padding is 0 instead of pad_value"),
    "mask inverted": (lambda s, v=0: (*pad_torch(s, v)[:2], ~pad_torch(s, v)[2]), "the mask is inverted"),
    "float mask": (lambda s, v=0: (*pad_torch(s, v)[:2], pad_torch(s, v)[2].float()),
                   "should be a boolean mask"),
    "int32 lengths": (lambda s, v=0: (pad_torch(s, v)[0], pad_torch(s, v)[1].int(), pad_torch(s, v)[2]),
                      "has dtype torch.int32"),
    "time-first": (lambda s, v=0: (pad_torch(s, v)[0].transpose(0, 1), *pad_torch(s, v)[1:]), "time-first"),
    "two items": (lambda s, v=0: pad_torch(s, v)[:2], "expected a tuple of 3"),
}


@pytest.mark.parametrize("name", WRONG_PADS)
def test_pad_batch_rejects(name):
    fn, diagnosis = WRONG_PADS[name]
    assert_rejected(check_pad_batch, fn, diagnosis, "pad_batch")


@pytest.mark.parametrize("student", shared("pad_batch"))
def test_pad_batch_rejects_the_simulated_learners(student):
    fn, diagnosis = shared("pad_batch")[student]
    assert_rejected(check_pad_batch, fn, diagnosis, "pad_batch")


def test_pad_batch_right_answer_is_quiet(capfd):
    def noisy(*args):
        warnings.warn("a harmless warning")
        print("debug", file=sys.stderr)
        return pad_loop(*args)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_pad_batch(noisy, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- masked_cross_entropy

def ce_ignore_index(logits, targets, mask):
    V = logits.shape[-1]
    t = targets.masked_fill(~mask, -100)
    return F.cross_entropy(logits.reshape(-1, V), t.reshape(-1), ignore_index=-100)


def ce_boolean_index(logits, targets, mask):
    return F.cross_entropy(logits[mask], targets[mask])


def ce_loop(logits, targets, mask):
    total, count = logits.new_zeros(()), 0
    for b in range(logits.shape[0]):
        for t in range(logits.shape[1]):
            if mask[b, t]:
                total = total - torch.log_softmax(logits[b, t], dim=0)[targets[b, t]]
                count += 1
    return total / count


def ce_logsumexp(logits, targets, mask):
    picked = logits.gather(2, targets[..., None]).squeeze(2)  # (B, T)
    nll = torch.logsumexp(logits, dim=2) - picked
    return torch.where(mask, nll, torch.zeros_like(nll)).sum() / mask.sum()


def ce_float32(logits, targets, mask):
    return ce_ignore_index(logits.float(), targets, mask)  # loses precision: float32 only


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [ce_ignore_index, ce_boolean_index, ce_loop, ce_logsumexp])
def test_masked_cross_entropy_accepts_correct_code(fn, hidden):
    check_masked_cross_entropy(fn, hidden=hidden)


def test_masked_cross_entropy_reference_equals_ignore_index():
    for case in build_cases(True, LOSS_PLAN):
        a = case.args
        want = ce_ignore_index(a["logits"], a["targets"], a["mask"])
        torch.testing.assert_close(masking.masked_cross_entropy(a["logits"], a["targets"], a["mask"]), want)


WRONG_LOSSES = {
    "sum": (lambda lg, t, m: ce_ignore_index(lg, t, m) * m.sum(), "the sum over the real tokens"),
    "per-sequence losses": (lambda lg, t, m: torch.stack([ce_ignore_index(lg[b:b + 1], t[b:b + 1], m[b:b + 1])
                                                          for b in range(lg.shape[0])]), "one loss per sequence"),
    "inverted mask": (lambda lg, t, m: ce_boolean_index(lg, t, ~m) if (~m).any() else ce_boolean_index(lg, t, m) + 1,
                      "the loss is taken over the padding"),
    "float32 in float64": (ce_float32, "precision was lost"),
    "detached": (lambda lg, t, m: ce_ignore_index(lg.detach(), t, m), "does not carry a gradient back"),
    "counts padding": (lambda lg, t, m: F.cross_entropy(lg.reshape(-1, lg.shape[-1]), t.reshape(-1)),
                       "the padding is counted"),
    "softmax over time": (lambda lg, t, m: -(torch.log_softmax(lg, 1).gather(2, t[..., None]).squeeze(2) * m).sum()
                          / m.sum(), "over the time axis"),
}


@pytest.mark.parametrize("name", WRONG_LOSSES)
def test_masked_cross_entropy_rejects(name):
    fn, diagnosis = WRONG_LOSSES[name]
    assert_rejected(check_masked_cross_entropy, fn, diagnosis, "masked_cross_entropy")


@pytest.mark.parametrize("student", shared("masked_cross_entropy"))
def test_masked_cross_entropy_rejects_the_simulated_learners(student):
    fn, diagnosis = shared("masked_cross_entropy")[student]
    assert_rejected(check_masked_cross_entropy, fn, diagnosis, "masked_cross_entropy")


# ---------------------------------------------------------------- last_valid

def last_gather(outputs, lengths):
    index = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.shape[2])
    return outputs.gather(1, index).squeeze(1)


def last_loop(outputs, lengths):
    return torch.stack([outputs[b, int(lengths[b]) - 1] for b in range(outputs.shape[0])])


def last_arange(outputs, lengths):
    return outputs[torch.arange(outputs.shape[0]), lengths - 1]  # CPU rows index a GPU tensor too


def last_onehot(outputs, lengths):
    pick = F.one_hot(lengths - 1, outputs.shape[1]).to(outputs.dtype)  # (B, T)
    return torch.einsum("bt,bth->bh", pick, outputs)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [last_gather, last_loop, last_arange, last_onehot])
def test_last_valid_accepts_correct_code(fn, hidden):
    check_last_valid(fn, hidden=hidden)


def test_last_valid_equals_packed_lstm_final_state():
    # the reference readout is what a packed LSTM returns as h_n
    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 4, batch_first=True)
    x = torch.randn(5, 7, 3)
    lengths = torch.tensor([1, 7, 3, 5, 2])
    out, _ = lstm(x)
    _, (h_n, _) = lstm(torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True,
                                                               enforce_sorted=False))
    torch.testing.assert_close(last_gather(out, lengths), h_n[0])


WRONG_LAST = {
    "first position": (lambda o, L: o[:, 0], "reads the first position"),
    "lengths - 2": (lambda o, L: o[torch.arange(o.shape[0]), (L - 2).clamp(min=0)], "lengths[b] - 1"),
    "detached": (lambda o, L: last_gather(o, L).detach(), "does not carry a gradient back"),
    "time axis kept": (lambda o, L: last_gather(o, L)[:, None], "drop the time axis"),
}


@pytest.mark.parametrize("name", WRONG_LAST)
def test_last_valid_rejects(name):
    fn, diagnosis = WRONG_LAST[name]
    assert_rejected(check_last_valid, fn, diagnosis, "last_valid")


@pytest.mark.parametrize("student", shared("last_valid"))
def test_last_valid_rejects_the_simulated_learners(student):
    fn, diagnosis = shared("last_valid")[student]
    assert_rejected(check_last_valid, fn, diagnosis, "last_valid")


def test_reading_lengths_is_named_where_it_runs():
    # the first case is padded beyond its longest member: reading lengths[b] is in range there,
    # so the mistake is named before a full-length case makes it an index error
    fn = shared("last_valid")["off_by_one"][0]
    for hidden in (False, True):
        assert_rejected(check_last_valid, fn, "position lengths instead of lengths - 1", "last_valid",
                        hidden=hidden, first_case=True)


# ---------------------------------------------------------------- masked_mean

def mean_where(outputs, mask):
    z = torch.where(mask[..., None], outputs, torch.zeros_like(outputs))
    return z.sum(1) / mask.sum(1, keepdim=True)


def mean_loop(outputs, mask):
    return torch.stack([outputs[b][mask[b]].mean(0) for b in range(outputs.shape[0])])


def mean_einsum(outputs, mask):
    w = mask.to(outputs.dtype)
    w = w / w.sum(1, keepdim=True)
    return torch.einsum("bt,bth->bh", w, outputs)


def mean_nan_to_num(outputs, mask):
    # NaN-filled padding averaged with nanmean: right, if unusual
    return torch.nanmean(outputs.masked_fill(~mask[..., None], float("nan")), dim=1)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [mean_where, mean_loop, mean_einsum, mean_nan_to_num])
def test_masked_mean_accepts_correct_code(fn, hidden):
    check_masked_mean(fn, hidden=hidden)


WRONG_MEANS = {
    "sum of everything over the count": (lambda o, m: o.sum(1) / m.sum(1, keepdim=True), "the padding is summed"),
    "masked sum": (lambda o, m: (o * m[..., None]).sum(1), "returns the masked sum"),
    "divides by T": (lambda o, m: (o * m[..., None]).sum(1) / o.shape[1], "divided by T instead of the number"),
    "prefix": (lambda o, m: torch.stack([o[b, :int(m[b].sum())].mean(0) for b in range(o.shape[0])]),
               "right-padded batch"),
    "batch count": (lambda o, m: (o * m[..., None]).sum(1) / m.sum(), "in the whole batch"),
    "time axis kept": (lambda o, m: mean_where(o, m)[:, None], "drop the time axis"),
    "float32": (lambda o, m: mean_where(o.float(), m), "precision was lost"),
}


@pytest.mark.parametrize("name", WRONG_MEANS)
def test_masked_mean_rejects(name):
    fn, diagnosis = WRONG_MEANS[name]
    assert_rejected(check_masked_mean, fn, diagnosis, "masked_mean")


@pytest.mark.parametrize("student", shared("masked_mean"))
def test_masked_mean_rejects_the_simulated_learners(student):
    fn, diagnosis = shared("masked_mean")[student]
    assert_rejected(check_masked_mean, fn, diagnosis, "masked_mean")


# ---------------------------------------------------------------- the cases themselves

@pytest.mark.parametrize("plan", [PAD_PLAN, LOSS_PLAN, LAST_PLAN, MEAN_PLAN], ids=["pad", "loss", "last", "mean"])
def test_cases_draw_lengths_of_one_and_sizes_of_one(plan):
    for hidden in (False, True):
        cases = build_cases(hidden, plan)
        assert any(c.sizes["B"] == 1 for c in cases) and any(c.sizes["T"] == 1 for c in cases)
        assert all(1 in c.sizes["lengths"] for c in cases if c.sizes["B"] > 1 and "lengths" in c.sizes)
    assert {c.dtype for c in build_cases(True, plan)} == {torch.float64}


def test_draw_lengths_spreads_and_can_leave_extra_padding():
    gen = torch.Generator().manual_seed(0)
    full = draw_lengths(gen, 6, 9)
    assert full.min() == 1 and full.max() == 9
    extra = draw_lengths(gen, 6, 9, full=False)
    assert extra.min() == 1 and extra.max() == 8


def test_a_learner_exception_is_reported_as_the_exercise_failing():
    def broken(outputs, mask):
        raise ValueError("oops")
    with pytest.raises(CheckFailed, match="masked_mean, case 1 of .*raised ValueError: oops"):
        check_masked_mean(broken)


# ---------------------------------------------------------------- the device probe

def test_device_probe_is_inconclusive_for_right_code_that_reads_values():
    # .item()/.tolist() on a tensor made without device= cannot run on meta: no points lost
    def tolist_lengths(sequences, pad_value=0):
        lengths = torch.tensor([len(s) for s in sequences])
        T = int(lengths.max().item())
        first = sequences[0]
        padded = first.new_full((len(sequences), T, *first.shape[1:]), pad_value)
        for b, L in enumerate(lengths.tolist()):
            padded[b, :L] = sequences[b]
        lengths = lengths.to(first.device)
        return padded, lengths, torch.arange(T, device=first.device) < lengths[:, None]
    check_pad_batch(tolist_lengths, hidden=True)


def test_device_probe_allows_cpu_scalars():
    def scalar_accumulator(logits, targets, mask):
        total = torch.tensor(0.0, dtype=logits.dtype)  # 0-dim: a CPU scalar meets GPU tensors fine
        return (total + ce_ignore_index(logits, targets, mask) * mask.sum()) / mask.sum()
    check_masked_cross_entropy(scalar_accumulator, hidden=True)


def test_device_probe_names_a_stray_arange():
    def stray(outputs, mask):
        w = (torch.arange(outputs.shape[1]) >= 0) & mask  # a CPU (B, T) meets the mask
        return mean_where(outputs, w)
    assert_rejected(check_masked_mean, stray, "created without device=", "masked_mean")
