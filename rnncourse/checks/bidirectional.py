"""Checks for lesson 06 (bidirectional and stacked layers): reverse_padded, bilstm, stacked_bilstm.

Shapes: batch-first padded batches ``x`` (B, T, I) with ``lengths`` (B,) int64 on
x's device, ``1 <= lengths[b] <= T``, padding after each sequence.

* ``reverse_padded(x, lengths)`` -> (B, T, F): each sequence reversed within its length.
* ``bilstm(x, lengths, cell_fw, cell_bw)`` -> ``(outputs (B, T, 2H), (h_n, c_n))``, h_n and
  c_n (2, B, H), from two LSTM cells (torch.nn.LSTMCell): equal to
  ``torch.nn.LSTM(bidirectional=True)``; ``x`` may also be a PackedSequence (lengths None).
* ``stacked_bilstm(x, lengths, layers, dropout)`` -> ``(outputs (B, T, 2H), (h_n, c_n))``,
  h_n and c_n (4, B, H) in torch's layer-major order, from ``layers`` =
  ``[(cell_fw, cell_bw), (cell_fw, cell_bw)]`` with the module ``dropout`` between the layers.

The references are torch.nn.LSTM itself; the wrong variants the checks name are
computed by :mod:`rnncourse.checks.bidirectional_runs`. Besides the values, each
check back-propagates random cotangents through the learner's result and compares
the gradients of x and of every cell weight with torch's, and runs one case on
torch's 'meta' device, where a tensor created on the CPU by mistake cannot pass.
"""
from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from rnncourse.checks import bidirectional_runs as R
from rnncourse.checks.bidirectional_runs import DropoutSpec, MarkedDropout  # noqa: F401 (the lesson imports it here)
from rnncourse.checks.bidirectional_meta import ALLOWED_CELLS, CELLS_ALLOWED, on_meta
from rnncourse.experiments.settings import torch_threads
from rnncourse.checks.core import (
    CheckFailed, Drawn, Plan, build_cases, call_learner, close, compare, on_cpu64, passed, randn,
    tolerance, validate, validate_items,
)

_BLOCKS = ALLOWED_CELLS  # reference models, nn.LSTM/rnncourse.LSTM, the fused layer kernels; cells allowed


# ----------------------------------------------------------------------------
# drawing cases

def _lengths(gen, B: int, T: int) -> torch.Tensor:
    """(B,) in [1, T], one of them T and (for B > 1) one of them 1, in random order."""
    L = torch.randint(1, T + 1, (B,), generator=gen)
    L[0] = T
    if B > 1:
        L[1] = 1
    return L[torch.randperm(B, generator=gen)]


def _padded(gen, B, T, F, L, scale=1.0):
    x = randn(gen, B, T, F, scale=scale)  # (B, T, F)
    real = torch.arange(T)[None, :, None] < L[:, None, None]
    return torch.where(real, x, torch.zeros_like(x))  # zero padding, as pad_batch gives


def _sizes(gen, names: str, low=2, high=9) -> dict:
    pool = torch.randperm(high - low, generator=gen) + low
    return {n: int(pool[i]) for i, n in enumerate(names)}


@dataclass(frozen=True)
class Cells:
    """LSTM cells to hand the learner, built on the case's device and dtype when called:
    ``weights`` is [(wf, wb), ...] (float64 CPU (W_ih, W_hh, b_ih, b_hh) each)."""
    weights: tuple

    def build(self, dtype, device):
        out = []
        for pair in self.weights:
            cells = []
            for W_ih, W_hh, b_ih, b_hh in pair:
                cell = torch.nn.LSTMCell(W_ih.shape[1], W_hh.shape[1], dtype=dtype, device=device)
                with torch.no_grad():
                    for p, v in zip((cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh),
                                    (W_ih, W_hh, b_ih, b_hh)):
                        p.copy_(v.to(dtype)) if device.type != "meta" else None
                cells.append(cell)
            out.append(tuple(cells))
        return out


def _weights(gen, I: int, H: int) -> tuple:
    return tuple(randn(gen, *shape, scale=0.5) for shape in ((4 * H, I), (4 * H, H), (4 * H,), (4 * H,)))


# ----------------------------------------------------------------------------
# exercise (a): reverse_padded

def _reverse_build(gen, _):
    s = _sizes(gen, "BTF")
    edge = {"B": 1, "T": s["T"], "F": 1} if int(torch.randint(2, (1,), generator=gen)) else \
        {"B": s["B"], "T": 1, "F": s["F"]}
    out = []
    for sz in (s, edge):
        L = _lengths(gen, sz["B"], sz["T"])
        out.append(Drawn({"x": _padded(gen, sz["B"], sz["T"], sz["F"], L), "lengths": L}, sizes=sz))
    return out


REVERSE_PLAN = Plan("", _reverse_build, visible_seeds=(0, 1), hidden_seeds=(10, 11, 12, 13))


def _reverse_variants(x, L) -> dict:
    T = x.shape[1]
    t = torch.arange(T)
    off = [torch.where(t < l, (l - t) % T, t) for l in L.tolist()]  # x[l - t]: lengths, not lengths - 1
    return {
        "the whole padded tensor is flipped (x.flip(1)): the padding moves to the front and each "
        "sequence starts on it": x.flip(1),
        "the sequences are not reversed at all": x,
        "each sequence is read from position lengths[b] instead of lengths[b] - 1 (off by one)":
            torch.stack([x[b, off[b]] for b in range(len(off))]),
        "each sequence is reversed within its length but then shifted to the end (the padding "
        "moves to the front)": torch.stack([torch.roll(R.flip_within(x, L)[b], T - l, 0)
                                           for b, l in enumerate(L.tolist())]),
    }


def check_reverse_padded(reverse_padded, hidden: bool = False) -> None:
    """reverse_padded(x, lengths) -> y with y[b, t] = x[b, lengths[b]-1-t] for t < lengths[b]
    and the padding left at the end."""
    with torch_threads(1):  # tiny tensors: on a shared machine extra threads only wait
        ex = "reverse_padded"
        cases = build_cases(hidden, REVERSE_PLAN)
        for case in cases:
            out = call_learner(reverse_padded, case, ex, blocks=_BLOCKS)
            B, T, F = case.sizes["B"], case.sizes["T"], case.sizes["F"]
            validate(out, case, ex, "the reversed batch", ("B", "T", "F"))
            a = on_cpu64(case)
            compare(out, R.flip_within(a["x"], a["lengths"]), case, ex, "the reversed batch",
                    _reverse_variants(a["x"], a["lengths"]),
                    hint="y[b, t] = x[b, lengths[b] - 1 - t] for t < lengths[b]; the padding stays where it is.")
        on_meta(reverse_padded, cases[0], ex, _BLOCKS,
                lambda out, case: [("the reversed batch", out, case.args["x"].shape)], allow=())
        passed(ex, cases, hidden)


# ----------------------------------------------------------------------------
# exercise (b): bilstm

def _bilstm_build(gen, _, variant):
    packed, one = variant
    s = _sizes(gen, "BTIH")
    if one and packed:  # sizes of 1 in the hidden cases (the visible ones keep padding to get right)
        s["B"], s["T"] = 1, 1
    elif one:
        s["I"], s["H"] = 1, 1
    L = _lengths(gen, s["B"], s["T"])
    x = _padded(gen, s["B"], s["T"], s["I"], L)
    cells = Cells(((_weights(gen, s["I"], s["H"]), _weights(gen, s["I"], s["H"])),))
    grads = {"out": randn(gen, s["B"], s["T"], 2 * s["H"]), "h": randn(gen, 2, s["B"], s["H"]),
             "c": randn(gen, 2, s["B"], s["H"])}
    args = {"x": x, "lengths": L, "cell_fw": cells, "cell_bw": None}
    return Drawn(args, sizes={**s, "packed": packed}, context={"packed": packed, "grads": grads})


# (packed, B = 1): the visible cases are padded then packed, B > 1
BILSTM_PLAN = Plan("", _bilstm_build, visible_seeds=(0,), hidden_seeds=(10, 11, 12, 13),
                   variants=((False, False), (True, False), (True, True), (False, True)))


def _prepare(case, packed_x: bool = False):
    """The case with its cells built on its device and dtype, x a leaf that records its
    gradient, and (``packed_x``) x packed with lengths None. Returns (case, leaf x, cells)."""
    args = dict(case.args)
    cells = args["cell_fw"].build(case.dtype, case.device) if "cell_fw" in args else \
        args["layers"].build(case.dtype, case.device)
    x = args["x"].detach().clone().requires_grad_(case.device.type != "meta")
    if "cell_fw" in args:
        args["cell_fw"], args["cell_bw"] = cells[0]
    else:
        args["layers"] = [tuple(p) for p in cells]
    args["x"] = x
    if packed_x:
        args["x"] = pack_padded_sequence(x, case.args["lengths"].cpu(), batch_first=True, enforce_sorted=False)
        args["lengths"] = None
    return dataclasses.replace(case, args=args), x, cells


def _unpack_result(result, case, ex, layers: int):
    """(outputs (B, T, 2H), h_n, c_n (2 * layers, B, H)) of the learner's result, validated."""
    outputs, state = validate_items(result, case, ex, ("outputs", "(h_n, c_n)"), by_length={
        3: "three items. Return the final states as one pair, like nn.LSTM: `return outputs, (h_n, c_n)`."})
    h_n, c_n = validate_items(state, case, ex, ("h_n", "c_n"), what="as the second item the pair",
                              fix="return outputs, (h_n, c_n)")
    B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
    if isinstance(outputs, PackedSequence):  # what nn.LSTM returns for a packed input: fine too
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=T)
    D = 2 * layers
    validate(outputs, case, ex, "outputs", ("B", "T", 2 * H), shape_hints={
        (B, T, H): "that is one direction; outputs hold both, torch.cat([forward, backward], dim=-1)",
        (T, B, 2 * H): "this is time-first; the course is batch-first"})
    for what, t in (("h_n", h_n), ("c_n", c_n)):
        validate(t, case, ex, what, (D, "B", "H"), shape_hints={
            (B, 2 * H): f"stack the {D} final states along a new first axis: ({D}, B, H), as nn.LSTM does",
            (D // 2, B, 2 * H): f"one (B, H) entry per layer and direction, {D} of them, not directions side by side",
            (2 if D == 4 else 4, B, H): f"one entry per layer and direction: {D} of them"})
    return outputs, h_n, c_n


def _gradients(case, x, cells, outputs, h_n, c_n, ex, reference):
    """Back-propagate the case's cotangents through the learner's result and compare the
    gradients of x and of every cell weight with those of ``reference(x, weights)``
    (float64 CPU leaves, weights [(wf, wb), ...]) -> (outputs, h_n, c_n)."""
    g = case.context["grads"]
    leaves = [x] + [p for pair in cells for cell in pair for p in
                    (cell.weight_ih, cell.weight_hh, cell.bias_ih, cell.bias_hh)]
    if not (outputs.requires_grad and h_n.requires_grad and c_n.requires_grad):
        raise CheckFailed(f"{ex}, {case.label}: your result is not connected to x and the cells' weights "
                          "(no gradient flows back through it). Don't use .detach(), torch.no_grad(), "
                          ".item() or .data on the way: a model trains through this layer.")
    loss = sum((t * g[k].to(device=t.device, dtype=t.dtype)).sum()
               for k, t in (("out", outputs), ("h", h_n), ("c", c_n)))
    got = torch.autograd.grad(loss, leaves, allow_unused=True)
    ref_x = x.detach().to("cpu", torch.float64).requires_grad_(True)
    weights = [tuple(tuple(w.requires_grad_(True) for w in R.weights_of(cell)) for cell in pair) for pair in cells]
    want_leaves = [ref_x] + [w for pair in weights for ws in pair for w in ws]
    o, h, c = reference(ref_x, weights)
    ref_loss = (o * g["out"]).sum() + (h * g["h"]).sum() + (c * g["c"]).sum()
    want = torch.autograd.grad(ref_loss, want_leaves)
    atol, rtol = tolerance(case)
    names = ["x"] + [f"{n} of {'layer %d ' % (k // 2) if len(cells) > 1 else ''}"
                     f"{'cell_fw' if k % 2 == 0 else 'cell_bw'}"
                     for k in range(2 * len(cells)) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
    for name, a, b in zip(names, got, want):
        if a is None:
            raise CheckFailed(f"{ex}, {case.label}: no gradient reaches {name}: it is not used, or used "
                              "through .detach()/.data.")
        if not close(a, b, 10 * atol, 10 * rtol):
            raise CheckFailed(f"{ex}, {case.label}: the values are right but the gradient of {name} is "
                              f"not (largest error {float((a.detach().cpu().double() - b).abs().max()):.3g}): "
                              "something on the way is computed outside autograd (an in-place write "
                              "into a tensor that needs its old value, .data, or numpy).")


# ----------------------------------------------------------------------------
# exercise (b): bilstm, checked on padded and on packed input

def _bilstm_variants(a, wf, wb) -> dict:
    """phrase -> (outputs, h_n, c_n) of a wrong bidirectional layer."""
    x, L = a["x"], a["lengths"]
    unmasked = dict(masked=False)
    return {
        "the backward direction starts on the padding: the whole padded tensor was flipped "
        "(x.flip(1)) and the backward run reads the padding before the sequence":
            R.bilstm(x, L, wf, wb, backward=dict(reverse="whole", masked=False)),
        "the backward direction's outputs are not flipped back: position t holds its state after "
        "reading t + 1 tokens, not the state after reading x[t] from the right":
            R.bilstm(x, L, wf, wb, backward=dict(flip_back=False)),
        "the directions are concatenated in the wrong order (backward first; torch puts forward first)":
            R.bilstm(x, L, wf, wb, swap=True),
        "the padded batch runs through the padding without holding the state: the final states are "
        "read after T steps instead of at each sequence's end":
            R.bilstm(x, L, wf, wb, forward=unmasked, backward=unmasked),
        "the forward direction runs through the padding: its final state is read at T-1 instead of "
        "at each sequence's last real token": R.bilstm(x, L, wf, wb, forward=unmasked),
        "the padding positions of the outputs hold the state carried over the padding instead of zeros":
            R.bilstm(x, L, wf, wb, forward=dict(pad="state"), backward=dict(pad="state")),
    }


def _compare_layer(outputs, h_n, c_n, ref, variants, case, ex, order_variant):
    hint = ("forward: read x[b, :L_b] and keep the state once the sequence has ended; backward: "
            "reverse each sequence within its length, run, reverse the outputs back; outputs are "
            "zero at the padding, torch.cat([forward, backward], dim=-1).")
    o, h, c = ref
    swapped = "h_n and c_n are swapped: the pair is (h_n, c_n)"
    compare(outputs, o, case, ex, "outputs", {p: v[0] for p, v in variants.items()}, hint=hint)
    for what, got, want, other, k in (("h_n", h_n, h, c, 1), ("c_n", c_n, c, h, 2)):
        wrong = {swapped: other, **{p: v[k] for p, v in variants.items()}}
        phrase, variant = order_variant
        compare(got, want, case, ex, what, {**wrong, phrase: variant[k]},
                hint="per layer, the forward state at each sequence's last real token, then the "
                     "backward state after reading back to position 0.")


def check_bilstm(bilstm, hidden: bool = False) -> None:
    """bilstm(x, lengths, cell_fw, cell_bw) -> (outputs (B, T, 2H), (h_n, c_n) each (2, B, H)),
    equal to torch.nn.LSTM(bidirectional=True) with the cells' weights, on padded input with
    lengths and on a PackedSequence (lengths None); outputs zero at the padding."""
    with torch_threads(1):  # tiny tensors: on a shared machine extra threads only wait
        ex = "bilstm"
        cases = build_cases(hidden, BILSTM_PLAN)
        for case in cases:
            packed = case.context["packed"]
            ready, x, cells = _prepare(case, packed_x=packed)
            lengths = case.args["lengths"]
            result = call_learner(bilstm, ready, ex, blocks=_BLOCKS, allow=CELLS_ALLOWED, hint_on_error=(
                "x is a padded (B, T, I) batch with lengths (B,), or a PackedSequence with lengths None "
                "(torch.nn.utils.rnn.pad_packed_sequence unpacks it)." if packed else ""))
            outputs, h_n, c_n = _unpack_result(result, case, ex, layers=1)
            a = on_cpu64(case)
            weights = [(R.weights_of(f), R.weights_of(b)) for f, b in cells]
            ref = R.torch_lstm(a["x"], a["lengths"], weights)
            flipped = (None, ref[1].flip(0), ref[2].flip(0))
            _compare_layer(outputs, h_n, c_n, ref, _bilstm_variants(a, *weights[0]), case, ex,
                           ("h_n/c_n hold the directions in the wrong order (torch: forward first)", flipped))
            _gradients(case, x, cells, outputs, h_n, c_n, ex,
                       lambda xr, w: R.bilstm(xr, lengths.cpu(), *w[0]))
        first, _, _ = _prepare(cases[0])
        first = dataclasses.replace(first, args={**first.args, "x": first.args["x"].detach()})
        on_meta(bilstm, first, ex, _BLOCKS, lambda out, c: _meta_outputs(out, c, ex, 1))
        passed(ex, cases, hidden)


def _meta_outputs(out, case, ex, layers):
    outputs, state = validate_items(out, case, ex, ("outputs", "(h_n, c_n)"))
    h_n, c_n = validate_items(state, case, ex, ("h_n", "c_n"))
    B, T, H = case.sizes["B"], case.sizes["T"], case.sizes["H"]
    return [("outputs", outputs, (B, T, 2 * H) if isinstance(outputs, torch.Tensor) else None),
            ("h_n", h_n, (2 * layers, B, H)), ("c_n", c_n, (2 * layers, B, H))]


# ----------------------------------------------------------------------------
# exercise (c): stacked_bilstm, two layers with dropout between them

def _stacked_build(gen, _, variant):
    training, one = variant
    s = _sizes(gen, "BTIH", high=8)
    if s["I"] == 2 * s["H"]:
        s["I"] += 1 if s["I"] < 8 else -1
    if one and training:  # sizes of 1 in the hidden cases
        s["B"] = 1
    elif one:
        s["I"], s["H"] = 1, 1
    L = _lengths(gen, s["B"], s["T"])
    x = _padded(gen, s["B"], s["T"], s["I"], L)
    H = s["H"]
    cells = Cells(((_weights(gen, s["I"], H), _weights(gen, s["I"], H)),
                   (_weights(gen, 2 * H, H), _weights(gen, 2 * H, H))))
    grads = {"out": randn(gen, s["B"], s["T"], 2 * H), "h": randn(gen, 4, s["B"], H),
             "c": randn(gen, 4, s["B"], H)}
    p = float(torch.randint(2, 6, (1,), generator=gen)) / 10
    seed = int(torch.randint(10 ** 6, (1,), generator=gen))
    args = {"x": x, "lengths": L, "layers": cells, "dropout": DropoutSpec(p, training, seed)}
    return Drawn(args, sizes={**s, "p": p, "mode": "training" if training else "eval"},
                 context={"training": training, "grads": grads})


# (training, B = 1)
STACKED_PLAN = Plan("", _stacked_build, visible_seeds=(0,), hidden_seeds=(10, 11, 12, 13),
                    variants=((False, False), (True, False), (True, True), (False, True)))


def _dropout_calls(calls, case, ex):
    """In training, dropout must be called once, on the first layer's outputs (B, T, 2H)."""
    B, T, I, H = (case.sizes[k] for k in "BTIH")
    where = f"{ex}, {case.label}"
    between = (B, T, 2 * H)
    if not calls:
        raise CheckFailed(f"{where}: dropout was never called. Apply the module `dropout` to the first "
                          "layer's outputs before the second layer reads them (it does nothing in eval "
                          "mode, so this shows in training only).")
    inside = [c for c in calls if len(c) == 2]
    if inside:
        raise CheckFailed(f"{where}: dropout was called {len(inside)} times on (B, ·) tensors, inside the "
                          "time loop: it is applied to the recurrent state or to each step's input. "
                          "Dropout belongs between the layers only, once on the whole (B, T, 2H) output "
                          "of the layer below; never on the recurrent connections.")
    if (B, T, I) in calls:
        raise CheckFailed(f"{where}: dropout is applied to the input x before the first layer; "
                          "nn.LSTM(dropout=p) applies it between the layers only.")
    if calls.count(between) > 1:
        raise CheckFailed(f"{where}: dropout was applied {calls.count(between)} times to (B, T, 2H) "
                          "outputs: after the last layer too. nn.LSTM(dropout=p) applies it between the "
                          "layers only, never after the last one.")


def _forward_half_hint(msg: str, H: int) -> str:
    numbers = set(re.findall(r"\d+", msg))
    if str(H) in numbers and str(2 * H) in numbers and ("size" in msg or "shape" in msg):
        return ("\nIt looks as if the second layer was fed only one direction's half (H features): "
                "it reads both directions of the layer below, concatenated (2H features).")
    return ""


def check_stacked_bilstm(stacked_bilstm, hidden: bool = False) -> None:
    """stacked_bilstm(x, lengths, layers, dropout) -> (outputs (B, T, 2H), (h_n, c_n) each (4, B, H)):
    two bidirectional layers, layer 1 reading layer 0's outputs after ``dropout``; equal to
    torch.nn.LSTM(num_layers=2, bidirectional=True, dropout=p) in eval mode, and in training
    with ``dropout`` applied once, between the layers."""
    with torch_threads(1):  # tiny tensors: on a shared machine extra threads only wait
        ex = "stacked_bilstm"
        cases = build_cases(hidden, STACKED_PLAN)
        for case in cases:
            ready, x, cells = _prepare(case)
            dropout = case.args["dropout"].build()
            ready = dataclasses.replace(ready, args={**ready.args, "dropout": dropout})
            lengths = case.args["lengths"]
            H = case.sizes["H"]
            try:
                result = call_learner(stacked_bilstm, ready, ex, blocks=_BLOCKS, allow=CELLS_ALLOWED, hint_on_error=(
                    "layers is [(cell_fw, cell_bw), (cell_fw, cell_bw)]; layer 1's cells read 2H features."))
            except CheckFailed as e:
                raise CheckFailed(str(e) + _forward_half_hint(str(e), H)) from None
            outputs, h_n, c_n = _unpack_result(result, case, ex, layers=2)
            training = case.context["training"]
            if training:
                _dropout_calls(dropout.calls, case, ex)
            a = on_cpu64(case)
            weights = [(R.weights_of(f), R.weights_of(b)) for f, b in cells]
            B, T, I = (case.sizes[k] for k in "BTI")
            m_between = dropout.mask(0, (B, T, 2 * H))
            masks = {"between": m_between} if training else {}
            if training:
                ref = R.stacked(a["x"], a["lengths"], weights, masks)
            else:  # eval mode: torch's own module is the reference
                ref = R.torch_lstm(a["x"], a["lengths"], weights, dropout=dropout.p)
            variants = {
                "the second layer is fed only the forward half of the first layer's outputs (the "
                "backward half zeroed)": R.stacked(a["x"], a["lengths"], weights, masks, forward_half=True),
                "the second layer reads the first layer's outputs without dropout":
                    R.stacked(a["x"], a["lengths"], weights) if training else None,
                "dropout is applied after the last layer instead of between the layers":
                    R.stacked(a["x"], a["lengths"], weights, {"output": m_between}) if training else None,
                "dropout is applied to the input x instead of between the layers":
                    R.stacked(a["x"], a["lengths"], weights, {"input": dropout.mask(0, (B, T, I))})
                    if training else None,
            }
            variants = {p: v for p, v in variants.items() if v is not None}
            order = ("h_n/c_n are ordered by direction (layer 0 fw, layer 1 fw, layer 0 bw, layer 1 bw) "
                     "instead of torch's layer-major order (layer 0 fw, layer 0 bw, layer 1 fw, layer 1 bw)",
                     R.stacked(a["x"], a["lengths"], weights, masks, direction_major=True))
            _compare_layer(outputs, h_n, c_n, ref, variants, case, ex, order)
            _gradients(case, x, cells, outputs, h_n, c_n, ex,
                       lambda xr, w: R.stacked(xr, lengths.cpu(), w, masks))
        first, _, _ = _prepare(cases[0])
        args = {**first.args, "x": first.args["x"].detach(), "dropout": first.args["dropout"].build()}
        on_meta(stacked_bilstm, dataclasses.replace(first, args=args), ex, _BLOCKS,
                lambda out, c: _meta_outputs(out, c, ex, 2))
        passed(ex, cases, hidden)
