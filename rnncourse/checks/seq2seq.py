"""Checks for lesson 09 (sequence to sequence): decoder_io, greedy_decode, beam_search.

* ``decoder_io(targets, bos, eos, pad) -> (tgt_in, tgt_out, mask)``, each (B, T)
  with T the longest target plus one;
* ``greedy_decode(step, h0, max_len, bos, eos, pad) -> tokens (B, L)``;
* ``beam_search(step, h0, beam_width, max_len, bos, eos, alpha) -> (tokens (n,), score)``
  for one source, with the shrinking beam and the normalisation ``log p / n**alpha``
  the lesson states.

``step(y_prev (N,) int64, h (N, H)) -> (logits (N, V), h)`` is a small decoder
the check builds from plain tensor operations (:mod:`.seq2seq_refs`). While the
learner's code runs, the package's decoding functions and collate are blocked,
and torch's factory functions that get no ``device=`` create their tensors on
the 'meta' device: on a grader without a GPU, a tensor made on the default
device instead of the inputs' shows up as it would on a GPU.
"""
from __future__ import annotations

import dataclasses

import torch

# Imported here so that a learner's `from rnncourse.decoding import greedy_decode` inside the
# check is a lookup, and the refusal names the function called rather than the module's import.
import rnncourse.data.seq2seq  # noqa: F401
import rnncourse.decoding  # noqa: F401
from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare_exact, compare_scalar, passed,
    randn, tolerance, validate_int, validate_items, validate_mask, validate_scalar,
)
from rnncourse.checks.seq2seq_refs import (
    BEAM_VARIANTS, GREEDY_VARIANTS, IO_VARIANTS, DefaultDeviceTrap, DeviceMix, beam_reference,
    device_error, exhaustive, greedy_reference, io_reference, on_meta, prefix_table_step, table_step,
    toy_decoder,
)
from rnncourse.guard import handed_to_learner

_DEVICE = ("a tensor was created without device=...: torch put it on the default device (the CPU), "
           "away from the inputs. On a GPU this fails; create tensors with device=<input>.device, "
           "or with torch.full_like / x.new_full(...), which follow the input.")


def _call(fn, case, exercise: str, hint: str = ""):
    """call_learner with the default-device trap; a run that only fails because a
    trapped tensor was asked for its data is repeated without the trap.

    The trap is entered around call_learner, not inside it: a wrapper of the
    learner's function written here would be package code, switched off while
    the learner's code runs. The learner's exception, which call_learner turns
    into a message, is its CheckFailed's ``__context__``."""
    try:
        with DefaultDeviceTrap():
            out = call_learner(fn, case, exercise, hint_on_error=hint)
    except CheckFailed as failure:
        raised = failure.__context__
        if isinstance(raised, (RuntimeError, DeviceMix)) and device_error(raised):
            raise CheckFailed(f"{exercise}, {case.label}: {_DEVICE}") from None
        if isinstance(raised, (RuntimeError, NotImplementedError)) and "meta" in str(raised):
            return call_learner(fn, case, exercise, hint_on_error=hint)  # inconclusive: run it plainly
        raise
    if on_meta(out):
        raise CheckFailed(f"{exercise}, {case.label}: {_DEVICE}")
    return out


def _with_args(case, args: dict):
    return dataclasses.replace(case, args=args)


# ----------------------------------------------------------------------------
# decoder inputs and targets

def _io_build(gen, s):
    out = []
    for ids, B in (((1, 2, 0), s["B"]), ((4, 3, 5), 1)):
        n = torch.randint(0, 7, (B,), generator=gen)
        n[0] = 6 if B > 1 else 1  # the longest sets T; a length-1 target when B = 1
        if B > 2:
            n[1] = 1
        targets = [torch.randint(6, 20, (int(k),), generator=gen) for k in n]
        bos, eos, pad = ids
        out.append(Drawn({"targets": targets, "bos": bos, "eos": eos, "pad": pad},
                         sizes={"B": B, "T": int(n.max()) + 1}))
    return out


IO_PLAN = Plan("B", _io_build, integer=True, low=3, high=9, visible_seeds=(0, 1),
               hidden_seeds=(10, 11, 12))


def check_decoder_io(decoder_io, hidden: bool = False) -> None:
    """decoder_io(targets, bos, eos, pad) -> (tgt_in, tgt_out, mask), each (B, T),
    T = max len + 1: tgt_in = (bos, y...), tgt_out = (y..., eos), padded; mask True
    at the n + 1 real positions."""
    exercise = "decoder_io"
    cases = build_cases(hidden, IO_PLAN)
    for case in cases:
        targets = [y.to(case.device) for y in case.args["targets"]]
        case = _with_args(case, {**case.args, "targets": targets})
        result = _call(decoder_io, case, exercise)
        tin, tout, mask = validate_items(result, case, exercise, ("tgt_in", "tgt_out", "mask"))
        B, T = case.sizes["B"], case.sizes["T"]
        hints = {(B, T - 1): "one position short: BOS (in tgt_in) and EOS (in tgt_out) each add "
                             "one, so T is the longest target plus one",
                 (B, T + 1): "one position too many: T is the longest target plus one"}
        validate_int(tin, case, exercise, "tgt_in", ("B", "T"), hints, noun="targets")
        validate_int(tout, case, exercise, "tgt_out", ("B", "T"), hints, noun="targets")
        validate_mask(mask, case, exercise, "mask", ("B", "T"), hints)
        a = case.args
        ref = io_reference(a["targets"], a["bos"], a["eos"], a["pad"])
        variants = {}
        for phrase, name in IO_VARIANTS.items():
            v = io_reference(a["targets"], a["bos"], a["eos"], a["pad"], name)
            if not _same_triple(v, ref):
                variants[phrase] = v
        got = (tin, tout, mask)
        compare_exact(got, ref, case, exercise, "the decoder inputs, targets and mask",
                      variants=_singled_out(got, variants), same=_same_triple,
                      otherwise=_io_diagnosis(got, ref))
    passed(exercise, cases, hidden)


def _same_triple(a, b) -> bool:
    return all(x.shape == y.shape and torch.equal(x.cpu(), y.cpu()) for x, y in zip(a, b))


def _io_diagnosis(got, ref) -> str:
    names = [n for n, g, r in zip(("tgt_in", "tgt_out", "mask"), got, ref) if not torch.equal(g.cpu(), r)]
    return f"Wrong: {', '.join(names)}." if names else ""


def _singled_out(got, variants: dict, same=_same_triple) -> dict:
    """Only a variant that alone reproduces the output may be named."""
    hits = {p: v for p, v in variants.items() if v is not None and same(got, v)}
    return hits if len(hits) == 1 else {}


# ----------------------------------------------------------------------------
# greedy decoding

def _greedy_build(gen, s):
    out = []
    for scenario in ("mixed", "all_end", "single"):
        B = 1 if scenario == "single" else s["B"]
        V, H = s["V"], s["H"]
        max_len = 12 if scenario != "mixed" else 6
        low = 0.0 if scenario == "mixed" else 0.8
        rate = low + torch.rand(B, generator=gen, dtype=torch.float64) * 1.5  # (B,)
        h0 = torch.cat([randn(gen, B, H), torch.zeros(B, 1, dtype=torch.float64), rate[:, None]], 1)
        out.append(Drawn({"h0": h0, "max_len": max_len, "bos": 1, "eos": 2, "pad": 0},
                         sizes={"B": B, "V": V, "H": H, "max_len": max_len},
                         context={"model_seed": int(torch.randint(10 ** 6, (1,), generator=gen))}))
    return out


GREEDY_PLAN = Plan("BVH", _greedy_build, low=3, high=10, visible_seeds=(0,), hidden_seeds=(10, 11, 12))


def _toy(case, drift: bool = True):
    gen = torch.Generator().manual_seed(case.context["model_seed"])
    # handed to the learner's code: the check's own decoder, unblocked while it runs
    return handed_to_learner(toy_decoder(case.sizes["V"], case.sizes["H"], gen, case.dtype, case.device,
                                         eos=case.args.get("eos", 2), drift=drift))


def check_greedy_decode(greedy_decode, hidden: bool = False) -> None:
    """greedy_decode(step, h0, max_len, bos, eos, pad) -> tokens (B, L) int64: the argmax
    fed back from y_0 = bos; each row stops at its own EOS (pad after it); the loop ends
    when every row has ended or after max_len steps."""
    exercise = "greedy_decode"
    cases = build_cases(hidden, GREEDY_PLAN)
    for case in cases:
        step = _toy(case)
        case = _with_args(case, {"step": step, **case.args})
        out = _call(greedy_decode, case, exercise)
        a = case.args
        ref = greedy_reference(step, a["h0"], a["max_len"], a["bos"], a["eos"], a["pad"])
        L = ref.shape[1]
        B = case.sizes["B"]
        sizes = {**case.sizes, "L": L}
        shown = dataclasses.replace(case, sizes=sizes)
        variants = {p: greedy_reference(step, a["h0"], a["max_len"], a["bos"], a["eos"], a["pad"], v)
                    for p, v in GREEDY_VARIANTS.items()}
        variants = {p: v for p, v in variants.items() if not _same_tokens(v, ref)}
        named = _singled_out(out, variants, _same_tokens)
        if named and not _same_tokens(out, ref):
            compare_exact(out, ref, shown, exercise, "the tokens", variants=named, same=_same_tokens)
        validate_int(out, shown, exercise, "tokens", ("B", "L"), shape_hints={
            (B, a["max_len"]): "that is max_len steps: stop as soon as every sequence has emitted EOS",
            (B, L + 1): "one column too many: the output starts with the first generated token, not BOS"},
            dtype=torch.int64, noun="token ids'")
        compare_exact(out, ref, shown, exercise, "the tokens", same=_same_tokens,
                      otherwise="Feed back each row's argmax, put pad after a row's EOS, and stop "
                                "when every row has ended.")
    passed(exercise, cases, hidden)


def _same_tokens(a, b) -> bool:
    return isinstance(a, torch.Tensor) and a.shape == b.shape and torch.equal(a.cpu(), b.cpu())


# ----------------------------------------------------------------------------
# beam search on one source

def _beam_build(gen, s):
    out = []
    V, H = s["V"], s["H"]
    # nothing pruned: the answer is the exhaustive search's
    for alpha in (1.0, 0.0):
        out.append(("exhaustive", V, H, V ** 3, 3, alpha))
    out.append(("greedy", V, H, 1, 6, 1.0))
    out.append(("reference", V, H, s["K"], 5, 0.7))
    out.append(("reference", V, H, 2, 1, 1.0))  # max_len = 1
    drawn = []
    for kind, V_, H_, K, max_len, alpha in out:
        h0 = randn(gen, 1, H_)
        drawn.append(Drawn({"h0": h0, "beam_width": K, "max_len": max_len, "bos": 1, "eos": 2,
                            "alpha": alpha},
                           sizes={"V": V_, "H": H_, "K": K, "max_len": max_len, "alpha": alpha},
                           context={"kind": kind, "model_seed": int(torch.randint(10 ** 6, (1,), generator=gen))}))
    # tables by position that single out the variants (log-probabilities, V = 4, eos = 2)
    for rows, K, alpha, title in _TABLES:
        drawn.append(Drawn({"h0": torch.zeros(1, 1, dtype=torch.float64), "beam_width": K,
                            "max_len": len(rows), "bos": 1, "eos": 2, "alpha": alpha},
                           sizes={"K": K, "max_len": len(rows), "alpha": alpha},
                           context={"kind": "table", "table": torch.tensor(rows, dtype=torch.float64).log()},
                           title=title))
    # the lesson's beam-search tree (a, b, EOS): the best output starts with the second-best token
    for K, alpha in ((2, 1.0), (3, 0.0)):
        drawn.append(Drawn({"h0": torch.zeros(1, 2, dtype=torch.float64), "beam_width": K,
                            "max_len": 3, "bos": 1, "eos": 2, "alpha": alpha},
                           sizes={"K": K, "max_len": 3, "alpha": alpha}, context={"kind": "tree"},
                           title=f"the lesson's beam-search tree, beam width {K}, alpha {alpha}"))
    return drawn


_TABLES = (
    # EOS is likely at once, every later token is spread thin: the finished [EOS] wins
    ([[0.05, 0.06, 0.6, 0.29], [0.22, 0.24, 0.26, 0.28], [0.22, 0.24, 0.26, 0.28]], 2, 1.0,
     "a table where a hypothesis that finished early wins"),
    # a long confident continuation beats a short one only when normalised
    ([[0.05, 0.05, 0.5, 0.4], [0.01, 0.02, 0.03, 0.94], [0.01, 0.02, 0.94, 0.03]], 2, 1.0,
     "a table where length normalisation decides"),
)


def _beam_step(case):
    """The decoder handed to the learner's beam search: the check's own, unblocked while it runs."""
    if case.context["kind"] == "tree":
        from rnncourse.explore.seq2seq import TABLE, TOKENS
        return handed_to_learner(prefix_table_step(TABLE, TOKENS, case.device, case.dtype))
    if case.context["kind"] == "table":
        return handed_to_learner(table_step(case.context["table"].to(case.dtype), case.device))
    gen = torch.Generator().manual_seed(case.context["model_seed"])
    return handed_to_learner(toy_decoder(case.sizes["V"], case.sizes["H"], gen, case.dtype, case.device,
                                         sharp=1.5))


BEAM_PLAN = Plan("VHK", _beam_build, low=3, high=7, visible_seeds=(0,), hidden_seeds=(10, 11))


def check_beam_search(beam_search, hidden: bool = False) -> None:
    """beam_search(step, h0, beam_width, max_len, bos, eos, alpha) -> (tokens (n,), score):
    the shrinking beam of the lesson, every finished hypothesis kept, the best by
    log p / n**alpha (n counts EOS); equals exhaustive search when the beam covers every
    hypothesis and greedy decoding at width 1.

    Every case runs before a wrong answer is reported: a mistake is named only when
    one known variant reproduces the answers of all the failing cases."""
    exercise = "beam_search"
    cases = build_cases(hidden, BEAM_PLAN)
    failures = []  # (case, what, got, (ref tokens, ref score), phrases of the variants that match)
    consistent = []  # per case, the variants that reproduce the learner's answer
    for case in cases:
        step = _beam_step(case)
        case = _with_args(case, {"step": step, **case.args})
        a = case.args
        args = (step, a["h0"], a["beam_width"], a["max_len"], a["bos"], a["eos"], a["alpha"])
        ref = beam_reference(*args)
        kind = case.context["kind"]
        if kind == "exhaustive":
            ex_tokens, _ = exhaustive(step, a["h0"], case.sizes["V"], a["max_len"], a["bos"], a["eos"], a["alpha"])
            assert ex_tokens == ref[0], "the check's beam search must equal exhaustive search here"
        result = _call(beam_search, case, exercise)
        tokens, score = validate_items(result, case, exercise, ("tokens", "score"))
        shown = dataclasses.replace(case, sizes={**case.sizes, "n": len(ref[0])})
        if not isinstance(tokens, torch.Tensor) or tokens.dim() != 1:
            raise CheckFailed(f"{exercise}, {case.label}: tokens should be a 1-D tensor of token ids "
                              f"(the best hypothesis, EOS included if it has one), got "
                              f"{type(tokens).__name__} of shape {tuple(getattr(tokens, 'shape', ()))}.")
        validate_int(tokens, shown, exercise, "tokens", (len(tokens),), dtype=torch.int64, noun="token ids'")
        score = validate_scalar(score, case, exercise, "score")
        got = (tokens.cpu().tolist(), score)
        atol, rtol = tolerance(case, kind="scalar")

        def same(x, y, atol=atol, rtol=rtol):
            return x[0] == y[0] and (x[1] == y[1] or abs(x[1] - y[1]) <= atol + rtol * abs(y[1]))

        # the variants that reproduce this answer; a variant explains a wrong answer only
        # if it reproduces the answers of every case, the right ones included
        matching = {p for p, v in BEAM_VARIANTS.items() if same(got, beam_reference(*args, variant=v))}
        consistent.append(matching)
        if same(got, ref):
            continue
        what = {"exhaustive": "the best hypothesis (the beam covers every hypothesis here, so it is "
                              "the exhaustive search's)",
                "greedy": "the best hypothesis (beam_width = 1: greedy decoding's)"}.get(kind, "the best hypothesis")
        failures.append((shown, what, got, ref, matching))
    if failures:
        shown, what, got, ref, _ = failures[0]
        common = set.intersection(*consistent)
        where = f"{exercise}, {shown.label}"
        if len(common) == 1:
            raise CheckFailed(f"{where}: {what} is wrong. Your answers on all {len(cases)} cases "
                              f"({len(failures)} wrong) match what you get if {common.pop()}.")
        if got[0] == ref[0]:
            raise CheckFailed(f"{where}: {what} has the right tokens but the score is off by "
                              f"{abs(got[1] - ref[1]):.3g}. The score is log p / n**alpha, n counting "
                              "the generated tokens with EOS.")
        raise CheckFailed(f"{where}: {what} is wrong: yours has {len(got[0])} tokens and is not the best "
                          f"hypothesis ({len(failures)} of {len(cases)} cases fail). Check that every live "
                          "hypothesis is extended, that finished ones are kept, the shrinking width, and "
                          "the normalised score.")
    passed(exercise, cases, hidden)
