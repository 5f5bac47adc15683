r"""Checks for lesson 08 (a character language model): perplexity, temperature_probs,
sample_next (the sampler, statistical) and train_stream (truncated BPTT, in
:mod:`rnncourse.checks.language_model_tbptt`).

Shapes: logits (B, T, V) or (B, V), targets (B, T) integer, mask (B, T) bool
(True at real tokens).

* ``perplexity(logits, targets, mask) -> (ppl, bits)`` with
  :math:`\bar L = \frac{1}{\sum m} \sum_{b,t} m_{bt} \, (-\ln \mathrm{softmax}(z_{bt})_{y_{bt}})`
  (nats), :math:`\mathrm{ppl} = e^{\bar L}` and bits per character
  :math:`\bar L / \ln 2 = \log_2 \mathrm{ppl}`. The reference is
  ``rnncourse.masking.masked_cross_entropy`` (torch's ``ignore_index`` mean).
* ``temperature_probs(logits, tau) -> (B, V)``: :math:`\mathrm{softmax}(z / \tau)`;
  at :math:`\tau = 0` the one-hot of the argmax (the limit :math:`\tau \to 0^+`).
* ``sample_next(logits, tau, generator) -> (B,)`` int64: one draw per row from
  ``temperature_probs(logits, tau)`` using ``generator``. Checked by frequencies
  over thousands of seeded draws against the distribution, with a bound a correct
  sampler breaks with probability below 1e-8 per check (see :data:`DELTA`, :func:`frequency_bound`),
  never by one exact random stream: multinomial, inverse CDF and Gumbel-max all pass.
"""
from __future__ import annotations

import math

import torch

from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, compare, on_cpu64, passed, randn,
    validate, validate_int, validate_items, validate_scalar,
)
from rnncourse.explore.language_model import temperature_probs
from rnncourse.guard import REFERENCE_MODELS
from rnncourse.masking import lengths_to_mask, masked_cross_entropy

LN2 = math.log(2.0)
# What the learner's code must not reach: call_learner blocks the package's answer code on
# every call (the masked loss that answers perplexity, explore's temperature_probs, ...);
# the reference models are named here as well.
BLOCKS = (REFERENCE_MODELS,)


# ----------------------------------------------------------------------------
# the meta-device probe: device mistakes caught on a grader without a GPU

_DEVICE_WORDS = ("same device", "expected device", "device type", "Expected all tensors", "cpu and meta",
                 "meta and cpu")


def meta_probe(fn, case, exercise: str, what: str) -> None:
    """Run ``fn`` once on 'meta' tensors (shapes only, no data). A result on another
    device, or an error about mixing devices, is a device mistake that a GPU
    would show; any other error is ignored (data-dependent code, ``.item()``,
    boolean indexing, cannot run on 'meta', and is not wrong for that)."""
    meta = {k: v.to("meta") if isinstance(v, torch.Tensor) else v for k, v in case.args.items()}
    where = (f"{exercise}, case {case.total + 1}: case {case.index + 1}'s shapes on torch's 'meta' "
             "device (it stands in for a GPU)")
    try:
        with torch.no_grad():
            out = fn(*meta.values())
    except Exception as e:  # noqa: BLE001 - only a device error is the learner's mistake here
        text = str(e)
        if any(w in text for w in _DEVICE_WORDS):
            raise CheckFailed(f"{where}: your code mixes devices: {text.splitlines()[0]} Create every tensor "
                              "on the inputs' device (device=logits.device) or derive it from them.") from None
        return
    outs = out if isinstance(out, (tuple, list)) else (out,)
    for o in outs:
        if isinstance(o, torch.Tensor) and o.device.type != "meta":
            raise CheckFailed(f"{where}: {what} came back on '{o.device}'. Keep results on the inputs' device: "
                              "no .cpu(), and new tensors with device=logits.device.")


# ----------------------------------------------------------------------------
# perplexity

def _ppl_args(gen, s, ragged):
    B, T, V = s["B"], s["T"], s["V"]
    lengths = torch.randint(1, T + 1, (B,), generator=gen)
    if ragged:
        lengths[0] = T  # at least one full row, the others padded
    else:
        lengths[:] = T
        lengths[-1] = max(1, T // 2)
    return Drawn({"logits": randn(gen, B, T, V, scale=1.5),
                  "targets": torch.randint(0, V, (B, T), generator=gen),
                  "mask": lengths_to_mask(lengths, T)})


def _ppl_fixed():
    # sizes of 1: one sequence, one token; and a batch whose second row is one token long
    gen = torch.Generator().manual_seed(5)
    one = Drawn({"logits": randn(gen, 1, 1, 3), "targets": torch.tensor([[2]]),
                 "mask": torch.tensor([[True]])}, sizes={"B": 1, "T": 1, "V": 3})
    mask = torch.tensor([[True, True, True, True], [True, False, False, False]])
    two = Drawn({"logits": randn(gen, 2, 4, 5, scale=1.5), "targets": torch.randint(0, 5, (2, 4), generator=gen),
                 "mask": mask}, sizes={"B": 2, "T": 4, "V": 5})
    return (one, two)


PPL_PLAN = Plan("BTV", _ppl_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13), high=10,
                variants=(True, False), fixed=_ppl_fixed())


def _nll(a: dict) -> torch.Tensor:
    logp = torch.log_softmax(a["logits"], dim=-1)  # (B, T, V)
    return -logp.gather(-1, a["targets"].long().unsqueeze(-1)).squeeze(-1)  # (B, T)


def reference_perplexity(a: dict) -> tuple:
    """(ppl, bits) from the course's masked loss (float64, CPU)."""
    mean = masked_cross_entropy(a["logits"], a["targets"], a["mask"])  # nats
    return mean.exp(), mean / LN2


def _ppl_variants(a: dict) -> dict:
    """phrase -> (ppl, bits) of each known mistake."""
    nll, m = _nll(a), a["mask"]
    mean = (nll * m).sum() / m.sum()
    total = (nll * m).sum()
    pads = nll.mean()
    per_seq = ((nll * m).sum(1) / m.sum(1)).exp()  # (B,)
    return {
        "you exponentiate the summed loss instead of the mean over the real tokens (exp(sum) grows "
        "with the number of tokens)": (total.exp(), total / LN2),
        "you mix the log bases: 2 ** (mean loss in nats), or bits equal to the loss in nats; the loss "
        "of cross_entropy is in nats, so ppl = exp(loss) and bits = loss / ln 2": (2 ** mean, mean),
        "the perplexity is 2 ** (loss in nats), as if the loss were in bits": (2 ** mean, mean / LN2),
        "the bits are the loss in nats (not divided by ln 2)": (mean.exp(), mean),
        "the padded positions are counted in the mean (divide by the number of real tokens, "
        "mask.sum(), and leave the pads out of the sum)": (pads.exp(), pads / LN2),
        "you average per-sequence perplexities instead of taking exp of the mean loss over all "
        "real tokens": (per_seq.mean(), per_seq.mean().log() / LN2),
    }


def _matches(value: float, want: float, case) -> bool:
    atol, rtol = (1e-10, 1e-8) if case.dtype == torch.float64 else (1e-5, 1e-4)
    return math.isfinite(value) and abs(value - want) <= atol + rtol * abs(want)


def check_perplexity(perplexity, hidden: bool = False) -> None:
    """perplexity(logits (B, T, V), targets (B, T), mask (B, T)) -> (ppl, bits): exp of the
    mean cross-entropy over the real tokens, and the same loss in bits (log2 ppl)."""
    cases = build_cases(hidden, PPL_PLAN)
    for case in cases:
        out = call_learner(perplexity, case, "perplexity", blocks=BLOCKS)
        ppl, bits = validate_items(out, case, "perplexity", ("ppl", "bits"),
                                   fix="return ppl, bits")
        ppl = validate_scalar(ppl, case, "perplexity", "ppl")
        bits = validate_scalar(bits, case, "perplexity", "bits")
        a = on_cpu64(case)
        want_ppl, want_bits = (float(v) for v in reference_perplexity(a))
        if _matches(ppl, want_ppl, case) and _matches(bits, want_bits, case):
            continue
        where = f"perplexity, {case.label}"
        for phrase, (vp, vb) in _ppl_variants(a).items():
            if _matches(ppl, float(vp), case) and _matches(bits, float(vb), case):
                raise CheckFailed(f"{where}: (ppl, bits) are wrong. They match what you get if {phrase}.")
        if not _matches(ppl, want_ppl, case):
            extra = " (inf: an exponential of a sum overflows; take exp of the mean)" if math.isinf(ppl) else ""
            raise CheckFailed(f"{where}: ppl is off by {abs(ppl - want_ppl):.3g}{extra}. ppl = exp(mean "
                              "cross-entropy in nats over the real tokens, mask True).")
        raise CheckFailed(f"{where}: bits is off by {abs(bits - want_bits):.3g}; bits = (mean loss in nats) "
                          "/ ln 2 = log2(ppl).")
    if hidden:
        meta_probe(perplexity, cases[-1], "perplexity", "the result")
    passed("perplexity", cases, hidden)


# ----------------------------------------------------------------------------
# temperature

def reference_temperature_probs(logits: torch.Tensor, tau: float) -> torch.Tensor:
    """softmax(logits / tau) over the last axis; the one-hot of the argmax at tau = 0
    (``rnncourse.explore.language_model.temperature_probs``, called outside the block)."""
    return temperature_probs(logits, tau)


def _temperature_variants(logits: torch.Tensor, tau: float) -> dict:
    v = {}
    if tau > 0:
        v["the logits are multiplied by tau instead of divided by it"] = torch.softmax(logits * tau, -1)
        v["the temperature is applied after the softmax (softmax(logits) / tau): no longer a "
          "distribution"] = torch.softmax(logits, -1) / tau
        v["the temperature is applied after the softmax as softmax(logits) ** (1 / tau), without "
          "normalising again"] = torch.softmax(logits, -1) ** (1 / tau)
        v["the temperature is ignored (softmax(logits))"] = torch.softmax(logits, -1)
        v["the softmax runs over the wrong axis (dim=0, across the batch)"] = torch.softmax(logits / tau, 0)
    return v


def _temperature_args(gen, s, tau):
    B, V = s["B"], s["V"]
    # distinct logits (no ties, so the argmax at tau = 0 is one token)
    logits = torch.randperm(B * V, generator=gen).double().view(B, V) * 0.25 + randn(gen, B, V, scale=0.05)
    logits = logits - logits.mean(1, keepdim=True)
    return Drawn({"logits": logits, "tau": tau}, sizes={"tau": tau})


def _temperature_fixed():
    gen = torch.Generator().manual_seed(7)
    # one row of one class: probability 1 at any temperature; and a single row at tau = 0
    return (Drawn({"logits": randn(gen, 1, 1), "tau": 0.7}, sizes={"B": 1, "V": 1, "tau": 0.7}),
            Drawn({"logits": torch.tensor([[0.3, 2.0, -1.0, 1.5]]), "tau": 0.0},
                  sizes={"B": 1, "V": 4, "tau": 0.0}))


TEMPERATURE_PLAN = Plan("BV", _temperature_args, visible_seeds=(0, 1, 2), hidden_seeds=(10, 11, 12, 13, 14),
                        variants=(0.5, 2.0, 0.0, 1.0, 1e4), fixed=_temperature_fixed())


def check_temperature_probs(temperature_probs, hidden: bool = False) -> None:
    """temperature_probs(logits (B, V), tau) -> (B, V): softmax(logits / tau) over V; at
    tau = 0 the one-hot of each row's argmax."""
    cases = build_cases(hidden, TEMPERATURE_PLAN)
    for case in cases:
        tau = case.args["tau"]
        out = call_learner(temperature_probs, case, "temperature_probs", blocks=BLOCKS)
        where = f"temperature_probs, {case.label}"
        if tau == 0 and isinstance(out, torch.Tensor) and out.is_floating_point() and torch.isnan(out).any():
            raise CheckFailed(f"{where}: NaN at tau = 0 (logits / 0). Handle tau = 0 as the limit "
                              "tau -> 0+: all the probability on each row's largest logit.")
        validate(out, case, "temperature_probs", "the probabilities", ("B", "V"))
        logits = on_cpu64(case)["logits"]
        compare(out, reference_temperature_probs(logits, tau), case, "temperature_probs",
                "the probabilities", _temperature_variants(logits, tau),
                hint="softmax(logits / tau, dim=-1); each row sums to 1.")
    if hidden:
        meta_probe(temperature_probs, cases[-1], "temperature_probs", "the probabilities")
    passed("temperature_probs", cases, hidden)


# ----------------------------------------------------------------------------
# sampling: frequencies against the distribution

# The chance that one token's frequency breaks its bound for a correct sampler. A check
# tests at most 3 cases x 7 rows x 7 tokens + the single row's 4 = 151 frequencies, so a
# correct sampler fails a whole check with probability below 151 * 1e-11 < 1e-8 (union bound).
DELTA = 1e-11


def frequency_bound(p: torch.Tensor, n: int, delta: float = DELTA) -> torch.Tensor:
    r"""Bernstein's bound on :math:`|\hat f - p|` for a frequency of n independent draws:
    :math:`\sqrt{2 p (1 - p) \ln(2/\delta) / n} + \frac{2 \ln(2/\delta)}{3 n}`, exceeded
    with probability at most :math:`\delta`."""
    L = math.log(2 / delta)
    return (2 * p * (1 - p) * L / n).sqrt() + 2 * L / (3 * n)


def _sample_args(gen, s, tau):
    B, V = s["B"], s["V"]
    logits = randn(gen, B, V, scale=1.5)
    return Drawn({"logits": logits, "tau": tau}, sizes={"tau": tau})


# a size of 1: a single row (the shape generation uses, one sequence at a time)
_ONE_ROW = Drawn({"logits": torch.tensor([[1.2, -0.4, 0.3, 2.0]], dtype=torch.float64), "tau": 0.7},
                 sizes={"B": 1, "V": 4, "tau": 0.7})
SAMPLE_PLAN = Plan("BV", _sample_args, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12),
                   variants=(0.5, 2.0, 1.0), low=2, high=8, gpu=False, fixed=(_ONE_ROW,))
# the hidden checks run the single row too (fixed cases are otherwise visible only)
_ONE_ROW_PLAN = Plan("", lambda gen, sizes: [], fixed=(_ONE_ROW,), gpu=False)  # draws nothing more
REPEATS, CALLS = 1500, 4  # each row drawn REPEATS * CALLS = 6000 times per case


def _sample_variants(logits: torch.Tensor, tau: float) -> dict:
    e = torch.exp(logits / tau)
    wrong_axis = e / e.sum(0, keepdim=True)
    return {
        "the logits are multiplied by tau instead of divided by it": torch.softmax(logits * tau, -1),
        "the temperature is ignored or applied after the softmax (softmax(logits) / tau is "
        "normalised back to softmax(logits) by the sampler)": torch.softmax(logits, -1),
        "the exponentials are normalised over the wrong axis (dim=0, across the batch)":
            wrong_axis / wrong_axis.sum(-1, keepdim=True),
        "every draw is the argmax (greedy decoding, not sampling)":
            reference_temperature_probs(logits, 0.0),
    }


def _draws(fn, case, logits, tau, seed):
    """The learner's draws for REPEATS copies of every row: (REPEATS, B) int64 on the CPU."""
    B, V = logits.shape
    from rnncourse.checks.cases import make_case
    rep = logits.repeat(REPEATS, 1)  # (REPEATS * B, V): row r*B + b is a copy of row b
    big = make_case(case.index, case.total, case.seed, case.dtype, case.device, case.sizes,
                    {"logits": rep, "tau": tau, "generator": torch.Generator().manual_seed(seed)})
    out = call_learner(fn, big, "sample_next", blocks=BLOCKS)
    validate_int(out, big, "sample_next", "the sampled ids", (REPEATS * B,),
                 {(REPEATS * B, 1): "one id per row: squeeze the last axis",
                  (REPEATS * B, V): "draw one id per row, not return the probabilities"},
                 dtype=torch.int64, noun="ids")
    out = out.cpu()
    if bool(((out < 0) | (out >= V)).any()):
        raise CheckFailed(f"sample_next, {case.label}: ids outside [0, V={V}).")
    return out.view(REPEATS, B)


def _consistent(freq: torch.Tensor, p: torch.Tensor, n: int) -> bool:
    return bool(((freq - p).abs() <= frequency_bound(p, n)).all())


def check_sample_next(sample_next, hidden: bool = False) -> None:
    """sample_next(logits (B, V), tau, generator) -> (B,) int64: one draw per row from
    softmax(logits / tau), using ``generator``; the argmax at tau = 0."""
    cases = build_cases(hidden, SAMPLE_PLAN) + (build_cases(False, _ONE_ROW_PLAN) if hidden else [])
    for case in cases:
        logits, tau = on_cpu64(case)["logits"], case.args["tau"]
        where = f"sample_next, {case.label}"
        B, V = logits.shape
        seeds = [1000 * case.seed + k for k in range(CALLS)]
        draws = torch.cat([_draws(sample_next, case, case.args["logits"], tau, s) for s in seeds])
        n = draws.shape[0]
        freq = torch.nn.functional.one_hot(draws, V).double().mean(0)  # (B, V)
        p = reference_temperature_probs(logits, tau)
        if _consistent(freq, p, n):
            # the same seed must give the same draws whatever the global RNG does
            torch.manual_seed(12345)
            again = _draws(sample_next, case, case.args["logits"], tau, seeds[0])
            if not torch.equal(again, draws[:REPEATS]):
                raise CheckFailed(f"{where}: two calls with generators seeded alike gave different draws. "
                                  "Draw with the generator you are given (torch.multinomial(..., "
                                  "generator=generator) or torch.rand(..., generator=generator)), not "
                                  "torch's global random numbers.")
            continue
        for phrase, q in _sample_variants(logits, tau).items():
            if not torch.allclose(q, p, atol=0.05) and _consistent(freq, q, n):
                raise CheckFailed(f"{where}: over {n} draws per row the frequencies match what you get if "
                                  f"{phrase}.")
        gap = (freq - p).abs()
        b, v = divmod(int(gap.argmax()), V)
        raise CheckFailed(f"{where}: over {n} draws per row, token {v} of row {b} came up with frequency "
                          f"{float(freq[b, v]):.3f}, further from its probability under softmax(logits / "
                          f"tau) than chance allows (bound {float(frequency_bound(p[b, v], n)):.3f}).")
    zero = build_cases(hidden, Plan("BV", lambda g, s: _sample_args(g, s, 0.0), visible_seeds=(3,),
                                    hidden_seeds=(15,), gpu=False))
    for case in zero:  # tau = 0: deterministic, the argmax of every row
        logits = on_cpu64(case)["logits"]
        big = {**case.args, "generator": torch.Generator().manual_seed(1)}
        from rnncourse.checks.cases import make_case
        c = make_case(case.index, case.total, case.seed, case.dtype, case.device, case.sizes, big)
        out = validate_int(call_learner(sample_next, c, "sample_next", blocks=BLOCKS), c, "sample_next",
                           "the sampled ids", ("B",), dtype=torch.int64, noun="ids")
        if not torch.equal(out.cpu(), logits.argmax(-1)):
            raise CheckFailed(f"sample_next, {c.label}: at tau = 0 every row must give its argmax "
                              "(the limit of softmax(logits / tau) as tau -> 0+), without NaN or a draw.")
    passed("sample_next", cases + zero, hidden)


from rnncourse.checks.language_model_tbptt import check_train_stream  # noqa: E402,F401
