"""Checks for lesson 00 (welcome): one_hot and embed.

Indices come in several shapes (N,), (B, T) and, in hidden tests, (B, T, S):
both functions add one last axis, of size num_classes (one_hot) or E (embed).
"""
from __future__ import annotations

import torch

from rnncourse.checks.core import (
    Drawn, Plan, build_cases, distinct_sizes, call_learner, compare, on_cpu64, passed, randn, validate,
)

# Index shapes, taken in turn by the cases: batch-first sequences, a 1-D batch,
# and (hidden tests) one more axis so that code written for exactly two axes is caught.
_SHAPES = (("B", "T"), ("N",), ("B", "T", "S"))


def _indices(gen: torch.Generator, shape: tuple, high: int, use_top: bool) -> torch.Tensor:
    """Random class indices in [0, high). With ``use_top`` the first and last
    entries are 0 and high-1; without, every index stays below high-1, so a
    one_hot that sizes its last axis from indices.max() instead of num_classes
    returns the wrong shape."""
    top = high if use_top else high - 1
    idx = torch.randint(0, top, shape, generator=gen)
    flat = idx.view(-1)
    flat[0] = 0
    if use_top:
        flat[-1] = high - 1
    return idx


def _plan(last: str, build, integer: bool, ones: str = "", gradient=None) -> Plan:
    """Cases whose index shape (a variant, in turn from _SHAPES) decides which
    sizes are drawn: one per axis name plus ``last``. The case's axes are in its context.
    The case with sizes of 1 (``ones``) sets those of its axes to 1; every plan has a
    meta-device run (a tensor made without device=)."""
    def drawn(gen, given, axes):
        sizes = {**distinct_sizes(gen, "".join(axes) + last), **given}  # given: the sizes of 1
        shape = tuple(sizes[a] for a in axes)
        args = build(gen, shape, sizes, use_top=(axes != ("N",)))
        return Drawn(args, sizes={k: v for k, v in sizes.items() if k in axes or k in last},
                     context={"axes": axes})
    return Plan("", drawn, visible_seeds=(0, 1) if integer else (0,), integer=integer,
                variants=_SHAPES, ones=ones, meta=True, gradient=gradient)


def check_one_hot(one_hot, hidden: bool = False) -> None:
    """one_hot(indices, num_classes) -> a floating-point tensor of shape
    (*indices.shape, num_classes), on indices' device, with a single 1 per row."""
    def build(gen, shape, s, use_top):
        return {"indices": _indices(gen, shape, s["C"], use_top), "num_classes": s["C"]}

    # integer inputs: any floating output is fine (validate's input_dtype below); no gradient
    # flows through a one-hot tensor. Sizes of 1: one index of one sequence (B = T = 1).
    cases = build_cases(hidden, _plan("C", build, integer=True, ones="BTN"))
    for case in cases:
        axes = case.context["axes"]
        out = call_learner(one_hot, case, "one_hot",
                           hint_on_error="indices is a LongTensor of any shape; num_classes is an int.")
        C = case.sizes["C"]
        shape = tuple(case.sizes[a] for a in axes)
        hints = {(*shape, k): "the last axis must have num_classes entries, even when the "
                              "largest index in this batch is smaller" for k in range(1, C)}
        hints[shape] = "the classes axis is missing: add a last axis of size num_classes"
        hints[(C, *shape)] = "the classes axis should come last, not first"
        validate(out, case, "one_hot", "the result", (*axes, "C"), shape_hints=hints,
                 input_dtype=torch.float16)
        a = on_cpu64(case)
        expected = torch.nn.functional.one_hot(a["indices"], C).double()  # (*shape, C)
        compare(out, expected, case, "one_hot", "the result", {
            "the 1 lands one position too far right (at k+1 instead of k)": expected.roll(1, -1),
            "the 1 lands one position too far left (at k-1 instead of k)": expected.roll(-1, -1),
            "zeros and ones are swapped": 1 - expected,
        }, hint="row k of the result should be all zeros except a 1 at position indices[k].")
    passed("one_hot", cases, hidden)


def check_embed(embed, hidden: bool = False) -> None:
    """embed(indices, weight) -> weight[indices]: shape (*indices.shape, E) for a
    weight (V, E), in weight's dtype and on its device."""
    def build(gen, shape, s, use_top):
        return {"indices": _indices(gen, shape, s["V"], use_top=True),
                "weight": randn(gen, s["V"], s["E"])}

    # a model trains the embedding weight through the lookup: a gradient case; and sizes of 1
    # (one index, one embedding feature)
    cases = build_cases(hidden, _plan("VE", build, integer=False, ones="BTNE",
                                      gradient=lambda a: a["weight"][a["indices"]]))
    for case in cases:
        axes = case.context["axes"]
        out = call_learner(embed, case, "embed", hint_on_error=(
            "indices pick rows of weight (V, E). If you go through one_hot, give it "
            "weight's dtype and device: one_hot(indices, V).to(weight)."))
        V, E = case.sizes["V"], case.sizes["E"]
        shape = tuple(case.sizes[a] for a in axes)
        # the lesson promises weight's dtype: float32 in, float64 out is wrong too
        validate(out, case, "embed", "the result", (*axes, "E"), same_dtype=True, shape_hints={
            (V, *shape): "these are columns: weight[:, indices] picks columns; rows are weight[indices]",
            (*shape, V): "that is the one-hot tensor; multiply it by weight",
        })
        a = on_cpu64(case)
        expected = a["weight"][a["indices"]]  # (*shape, E)
        compare(out, expected, case, "embed", "the result",
                hint="entry [..., :] should be row indices[...] of weight.")
    passed("embed", cases, hidden)
