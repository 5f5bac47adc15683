"""Checks for lesson 07 (batching and masking): pad_batch, masked_cross_entropy,
last_valid, masked_mean.

Batches are right-padded and batch-first: ``padded`` (B, T, ...), ``lengths`` (B,)
int64, ``mask`` (B, T) bool, True at real tokens. Every case mixes very
different lengths with a length of 1, and a second case per seed draws the
sizes of 1 (B = 1, T = 1, H = 1, ...). The padded positions of the float
inputs hold values that are not zero (an LSTM's outputs there are not), so
code that lets them in is seen. The references are :mod:`rnncourse.masking`
and :func:`rnncourse.data.padding.pad_batch`, called outside the blocked
region; the wrong variants are in :mod:`rnncourse.checks.masking_variants`.

Where a model trains through the learner's output (the loss and the two
readouts), a case also back-propagates a random cotangent through it and
compares the gradient that reaches the input with the reference's. A last
case replays the first one with stray tensors sent to the meta device
(:mod:`rnncourse.checks.devprobe`), so that a tensor made without ``device=``
fails here as it would on a GPU.
"""
from __future__ import annotations

import dataclasses

import torch

from rnncourse import masking
from rnncourse.checks import masking_variants as V
from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, compare_exact, compare_scalar,
    on_cpu64, passed, randn, validate, validate_int, validate_items, validate_mask,
)
from rnncourse.checks.devprobe import assert_not_stray, probe_devices
from rnncourse.data.padding import pad_batch as _reference_pad_batch

_RIGHT = ("Right padding: sequence b fills padded[b, :lengths[b]] and the rest of the row "
          "is padding; mask[b, t] is True exactly when t < lengths[b].")


# ----------------------------------------------------------------------------
# drawing lengths and batches

def draw_lengths(gen: torch.Generator, B: int, T: int, full: bool = True) -> torch.Tensor:
    """(B,) int64 lengths in [1, T], very different from each other: the first is 1,
    the second is T (``full``) or T - 1 (a batch padded beyond its longest member),
    the rest uniform."""
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    if B == 1:  # a batch of one: its only sequence fills the batch (or all but one step)
        lengths[0] = T if full or T == 1 else T - 1
    if B >= 2:
        lengths[0] = 1
    if B >= 2:
        lengths[1] = T if full or T == 1 else T - 1
    if not full and T > 1:
        lengths = lengths.clamp(max=T - 1)
    return lengths


def _junk_padding(outputs: torch.Tensor, lengths: torch.Tensor, gen) -> torch.Tensor:
    """outputs with their padded positions overwritten by values far from the real ones."""
    B, T, H = outputs.shape
    pad = ~masking.lengths_to_mask(lengths, T)  # (B, T)
    junk = 3.0 + randn(gen, B, T, H)
    return torch.where(pad[..., None], junk, outputs)


def _sizes_of_one(variant: str, s: dict) -> dict:
    """The case's sizes with the ones of ``variant`` set to 1 ("B", "T", "H", "BH", ...)."""
    return {**s, **{k: 1 for k in variant if k in s}}


# ----------------------------------------------------------------------------
# pad_batch

def _pad_args(gen, s, variant):
    kind, ones = variant
    s = _sizes_of_one(ones, s)
    B, T = s["B"], s["T"]
    lengths = draw_lengths(gen, B, T)
    if kind == "tokens":
        seqs = [torch.randint(1, 20, (int(L),), generator=gen) for L in lengths]
        pad_value = [0, -1, 7][int(torch.randint(3, (), generator=gen))]
        sizes = {"B": B, "T": T}
    else:
        F = 1 if "F" in ones else int(torch.randint(2, 6, (), generator=gen))
        seqs = [randn(gen, int(L), F) for L in lengths]
        pad_value = [0.0, 0.5][int(torch.randint(2, (), generator=gen))]
        sizes = {"B": B, "T": T, "F": F}
    return Drawn({"sequences": seqs, "pad_value": pad_value}, sizes={**sizes, "pad_value": pad_value},
                 context={"kind": kind})


PAD_PLAN = Plan("BT", _pad_args, variants=(("tokens", ""), ("features", "TF"), ("features", ""),
                                           ("tokens", "B"), ("tokens", "T")),
                visible_seeds=(0, 1, 2), hidden_seeds=(10, 11, 12, 13, 14), low=2, high=10)


def _placed_sequences(case):
    """The case with its sequences (a list) on its device, floats in its dtype."""
    def place(t):
        t = t.to(case.dtype) if t.is_floating_point() and case.dtype.is_floating_point else t
        return t.to(case.device)
    return dataclasses.replace(case, args={**case.args, "sequences": [place(t) for t in case.args["sequences"]]})


def _pad_case(fn, case, exercise, probe=False):
    seqs = case.args["sequences"]
    copies = dataclasses.replace(case, args={**case.args, "sequences": [t.clone() for t in seqs]})
    if probe:
        return probe_devices(fn, copies, exercise)
    return call_learner(fn, copies, exercise, hint_on_error=_RIGHT)


def check_pad_batch(pad_batch, hidden: bool = False) -> None:
    """pad_batch(sequences, pad_value) -> (padded (B, T, *F), lengths (B,) int64, mask (B, T) bool),
    right padding with pad_value, T the longest length."""
    exercise = "pad_batch"
    cases = [_placed_sequences(c) for c in build_cases(hidden, PAD_PLAN)]
    for case in cases:
        result = _pad_case(pad_batch, case, exercise)
        padded, lengths, mask = validate_items(result, case, exercise, ("padded", "lengths", "mask"))
        seqs = [t.cpu() for t in case.args["sequences"]]
        ref = _reference_pad_batch(seqs, case.args["pad_value"])
        B, T = ref.mask.shape
        feat = tuple(ref.padded.shape[2:])
        names = ("B", "T", *(("F",) if feat else ()))
        hints = {(T, B, *feat): "this is time-first; the course is batch-first: padded[b] is sequence b"}
        _validate_padded(padded, case, exercise, names, hints, seqs[0].dtype)
        validate_int(lengths, case, exercise, "lengths", ("B",), dtype=torch.int64, noun="lengths",
                     shape_hints={(B, 1): "lengths is one number per sequence, shape (B,)"})
        validate_mask(mask, case, exercise, "mask", ("B", "T"), shape_hints={
            (T, B): "time-first; mask[b, t] is sequence b at step t",
            (B, T, *feat): "one True/False per step, not per feature: shape (B, T)"} if feat or B != T else None)
        wrong = V.pad_variants(seqs, case.args["pad_value"], ref)
        if padded.is_floating_point():
            compare(padded, ref.padded, case, exercise, "padded", wrong["padded"], hint=_RIGHT)
        else:
            compare_exact(padded, ref.padded, case, exercise, "the padded entries", wrong["padded"],
                          otherwise=_RIGHT)
        compare_exact(lengths, ref.lengths, case, exercise, "the lengths", wrong["lengths"])
        compare_exact(mask, ref.mask, case, exercise, "the mask entries", wrong["mask"], otherwise=_RIGHT)
    _probe(pad_batch, cases[0], exercise, ("padded", "lengths", "mask"), pad=True)
    passed(exercise, cases, hidden)


def _validate_padded(padded, case, exercise, names, hints, dtype):
    if dtype.is_floating_point:
        validate(padded, case, exercise, "padded", names, shape_hints=hints, input_dtype=dtype)
    else:
        validate_int(padded, case, exercise, "padded", names, shape_hints=hints, dtype=dtype, noun="sequences")


# ----------------------------------------------------------------------------
# the loss and the readouts: float inputs, lengths or a mask

def _loss_args(gen, s, ones):
    s = _sizes_of_one(ones, s)
    B, T, V_ = s["B"], s["T"], s["V"]
    lengths = draw_lengths(gen, B, T)
    logits = randn(gen, B, T, V_, scale=1.5)
    targets = torch.randint(V_, (B, T), generator=gen)  # the padded targets are classes too
    mask = masking.lengths_to_mask(lengths, T)
    return Drawn({"logits": logits, "targets": targets, "mask": mask},
                 sizes={"B": B, "T": T, "V": V_, "lengths": lengths.tolist()})


def _readout_args(gen, s, ones, full=True, name="lengths"):
    s = _sizes_of_one(ones, s)
    B, T, H = s["B"], s["T"], s["H"]
    if not full and T < 3:  # room for a length of 1 below T - 1: reading T-1 and lengths then differ
        T = 3
    lengths = draw_lengths(gen, B, T, full=full)
    outputs = _junk_padding(randn(gen, B, T, H), lengths, gen)
    if name == "lengths":
        return Drawn({"outputs": outputs, "lengths": lengths},
                     sizes={"B": B, "T": T, "H": H, "lengths": lengths.tolist()})
    mask = masking.lengths_to_mask(lengths, T)
    sizes = {"B": B, "T": T, "H": H, "lengths": lengths.tolist()}
    if not full:  # a left-padded batch: the mask's True entries need not come first
        mask, outputs = mask.flip(1), outputs.flip(1)
        sizes["padding"] = "left"
    return Drawn({"outputs": outputs, "mask": mask}, sizes=sizes)


LOSS_PLAN = Plan("BTV", lambda gen, s, ones: _loss_args(gen, s, ones), variants=("", "T", "B", "V"),
                 visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13))
LAST_PLAN = Plan("BTH", lambda gen, s, v: _readout_args(gen, s, v[0], full=v[1]),
                 variants=(("", False), ("T", True), ("", True), ("B", True), ("H", False)),
                 visible_seeds=(0, 1, 2), hidden_seeds=(10, 11, 12, 13, 14))
MEAN_PLAN = Plan("BTH", lambda gen, s, v: _readout_args(gen, s, v[0], full=v[1], name="mask"),
                 variants=(("", True), ("T", True), ("", False), ("B", True), ("H", True)),
                 visible_seeds=(0, 1, 2), hidden_seeds=(10, 11, 12, 13, 14))


def _with_grad(case, name):
    """The case with input ``name`` a fresh leaf that requires grad."""
    leaf = case.args[name].detach().clone().requires_grad_(True)
    return dataclasses.replace(case, args={**case.args, name: leaf}), leaf


def _check_gradient(out, leaf, case, exercise, what, reference_fn, a, name):
    """Back-propagate a random cotangent through the learner's output and the reference."""
    if not out.requires_grad:
        raise CheckFailed(f"{exercise}, {case.label}: {what} does not carry a gradient back to "
                          f"'{name}': a model trained through it would not learn. Keep the "
                          "computation in torch operations: no .item(), no .detach(), no new tensor "
                          "built from a result.")
    gen = torch.Generator().manual_seed(case.seed + 99)
    cot = torch.randn(out.shape, generator=gen, dtype=torch.float64)
    (got,) = torch.autograd.grad(out, leaf, cot.to(out), allow_unused=True)
    if got is None:
        got = torch.zeros_like(leaf)
    ref_leaf = a[name].clone().requires_grad_(True)
    ref_out = reference_fn({**a, name: ref_leaf})
    (want,) = torch.autograd.grad(ref_out, ref_leaf, cot)
    compare(got, want, case, exercise, f"the gradient reaching '{name}' (a random cotangent "
            f"back-propagated through {what})",
            hint="the values are right but the gradient is not: is part of the computation detached, "
                 "or done in place on a tensor autograd needs?")


def _probe(fn, case, exercise, what, pad=False):
    """Replay ``case`` with stray tensors sent to meta (see devprobe); only CPU cases."""
    if case.device.type != "cpu":
        return
    probe_case = dataclasses.replace(case, title=f"the device probe of case {case.index + 1}")
    out = _pad_case(fn, probe_case, exercise, probe=True) if pad else probe_devices(fn, probe_case, exercise)
    if out is not None:
        assert_not_stray(out, probe_case, exercise, what)


def _ref_loss(a):
    return masking.masked_cross_entropy(a["logits"], a["targets"], a["mask"])


def check_masked_cross_entropy(masked_cross_entropy, hidden: bool = False) -> None:
    """masked_cross_entropy(logits (B, T, V), targets (B, T), mask (B, T)) -> a 0-dim tensor:
    the cross-entropy averaged over the real tokens, as F.cross_entropy with ignore_index."""
    exercise = "masked_cross_entropy"
    cases = build_cases(hidden, LOSS_PLAN)
    for case in cases:
        case, leaf = _with_grad(case, "logits")
        with torch.enable_grad():
            out = call_learner(masked_cross_entropy, case, exercise, hint_on_error=(
                "log_softmax over the last axis (V), pick each target's entry, average over the "
                "positions where mask is True."))
        B, T = case.sizes["B"], case.sizes["T"]
        validate(out, case, exercise, "the loss", (), shape_hints={
            (1,): "a 0-dim tensor, like F.cross_entropy returns: .squeeze() or sum without keepdim",
            (B,): "one loss per sequence: the loss is one number, the mean over all real tokens",
            (B, T): "one loss per position: average them over the real tokens"})
        a = on_cpu64(case)
        expected = float(_ref_loss(a))
        compare_scalar(float(out.detach().cpu()), expected, case, exercise, "the loss",
                       V.loss_variants(a), advice="Average -log p(target) over the real tokens only.")
        _check_gradient(out, leaf, case, exercise, "the loss", _ref_loss, a, "logits")
    _probe(masked_cross_entropy, cases[0], exercise, ("the loss",))
    passed(exercise, cases, hidden)


def _check_readout(fn, hidden, exercise, plan, reference, variants, hint):
    cases = build_cases(hidden, plan)
    for case in cases:
        case, leaf = _with_grad(case, "outputs")
        with torch.enable_grad():
            out = call_learner(fn, case, exercise, hint_on_error=hint)
        B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
        validate(out, case, exercise, "the result", ("B", "H"), shape_hints={
            (B, 1, H): "drop the time axis (squeeze(1)): one vector per sequence",
            (B, T, H): "that is every position; keep one vector per sequence",
            (H,): "the batch axis is missing: one vector per sequence, shape (B, H)"})
        a = on_cpu64(case)
        expected = reference(a)
        compare(out, expected, case, exercise, "the result", variants(a), hint=hint)
        _check_gradient(out, leaf, case, exercise, "the result", reference, a, "outputs")
    _probe(fn, cases[0], exercise, ("the result",))
    passed(exercise, cases, hidden)


def check_last_valid(last_valid, hidden: bool = False) -> None:
    """last_valid(outputs (B, T, H), lengths (B,)) -> (B, H): outputs[b, lengths[b] - 1]."""
    _check_readout(last_valid, hidden, "last_valid", LAST_PLAN,
                   lambda a: masking.last_valid(a["outputs"], a["lengths"]), V.last_variants,
                   "sequence b's last real token is at position lengths[b] - 1 (positions count "
                   "from 0); reading lengths[b] is one step into the padding.")


def check_masked_mean(masked_mean, hidden: bool = False) -> None:
    """masked_mean(outputs (B, T, H), mask (B, T)) -> (B, H): the mean over the positions
    where mask is True."""
    _check_readout(masked_mean, hidden, "masked_mean", MEAN_PLAN,
                   lambda a: masking.masked_mean(a["outputs"], a["mask"]), V.mean_variants,
                   "sum the outputs where mask is True and divide by how many there are, per sequence; "
                   "the mask's True entries need not come first.")
