"""The lesson-11 checks accept correct code however it is written (Hillis–Steele,
a recursive odd-even scan, Blelloch's up- and down-sweep, upcasting) and reject the
typical wrong variants by name, loops in disguise and device mistakes included."""
import math
import sys
import warnings

import pytest
import torch

from _reject import assert_rejected
from classroom.wrong import parallel_scan, shared
from rnncourse.checks.modern import (
    GROWTH, LONG, SHORT, _round_args, check_linear_recurrence, check_mingru, check_parallel_scan,
    check_stream_step, operations, scan_variant,
)
from rnncourse.guard import handed_to_learner
from rnncourse.scan import scan_sequential

CHECKS = {"linear_recurrence": check_linear_recurrence, "parallel_scan": check_parallel_scan,
          "mingru": check_mingru, "stream_step": check_stream_step}


# ---------------------------------------------------------------- correct scans, written differently

def recurrence_unbind(a, b, h0):
    out, h = [], h0
    for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
        h = torch.addcmul(b_t, a_t, h)
        out.append(h)
    return torch.stack(out, 1)


def scan_odd_even(a, b, h0):
    """Recursive: combine neighbours, scan the pairs (half as long), fill in the evens."""
    b = torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], 1)

    def scan(A, Bv):
        T = A.shape[1]
        if T == 1:
            return A, Bv
        n = T // 2
        A2 = A[:, 1:2 * n:2] * A[:, 0:2 * n:2]                      # pairs (0,1), (2,3), ...
        B2 = A[:, 1:2 * n:2] * Bv[:, 0:2 * n:2] + Bv[:, 1:2 * n:2]
        SA, SB = scan(A2, B2)                                        # prefixes ending at 1, 3, 5, ...
        EA = A[:, 2::2] * SA[:, : (T - 1) // 2]                      # prefixes ending at 2, 4, ...
        EB = A[:, 2::2] * SB[:, : (T - 1) // 2] + Bv[:, 2::2]
        evensA, evensB = torch.cat([A[:, :1], EA], 1), torch.cat([Bv[:, :1], EB], 1)
        # interleave evens (0, 2, 4, ...) and odds (1, 3, ...)
        idx = torch.arange(T, device=A.device)
        A_out = torch.empty_like(A).index_copy(1, idx[0::2], evensA).index_copy(1, idx[1::2], SA)
        B_out = torch.empty_like(Bv).index_copy(1, idx[0::2], evensB).index_copy(1, idx[1::2], SB)
        return A_out, B_out
    return scan(a, b)[1]


def scan_blelloch(a, b, h0):
    """Work-efficient up-sweep / down-sweep on a copy padded to a power of two."""
    B, T, H = a.shape
    n = 1 << max(T - 1, 0).bit_length()
    A = torch.cat([a, a.new_ones(B, n - T, H)], 1)
    Bv = torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:], b.new_zeros(B, n - T, H)], 1)
    d = 1
    while d < n:  # up-sweep: position k*2d + 2d - 1 takes in k*2d + d - 1
        right = torch.arange(2 * d - 1, n, 2 * d, device=a.device)
        left = right - d
        nA = A[:, right] * A[:, left]
        nB = A[:, right] * Bv[:, left] + Bv[:, right]
        A, Bv = A.index_copy(1, right, nA), Bv.index_copy(1, right, nB)
        d *= 2
    # down-sweep, as an inclusive scan: position k*2d + 3d - 1 takes in k*2d + 2d - 1
    d = n // 2
    while d >= 1:
        if 3 * d - 1 < n:
            right = torch.arange(3 * d - 1, n, 2 * d, device=a.device)
            left = right - d
            nA = A[:, right] * A[:, left]
            nB = A[:, right] * Bv[:, left] + Bv[:, right]
            A, Bv = A.index_copy(1, right, nA), Bv.index_copy(1, right, nB)
        d //= 2
    return Bv[:, :T]


def scan_upcast(a, b, h0):
    return parallel_scan(a.double(), b.double(), h0.double())


RIGHT = {"linear_recurrence": [recurrence_unbind, parallel_scan],
         "parallel_scan": [parallel_scan, scan_odd_even, scan_blelloch, scan_upcast]}


def mingru_linear(x, h0, W_ih, b_ih):
    H = h0.shape[1]
    z = torch.sigmoid(torch.nn.functional.linear(x, W_ih[:H], b_ih[:H]))
    cand = torch.nn.functional.linear(x, W_ih[H:], b_ih[H:])
    return scan_blelloch(1 - z, z * cand, h0)


def mingru_lerp(x, h0, W_ih, b_ih):
    k, cand = (x @ W_ih.T + b_ih).chunk(2, -1)
    z = torch.sigmoid(k)
    return scan_odd_even(1 - z, z * cand, h0)  # (1 - z) h + z h̃ = lerp(h, h̃, z)


def stream_via_layer_step(model, x_t, state):
    # the layer's own weights, each layer's state row, the head on the last layer
    rows = []
    inp = x_t
    for k in range(model.rnn.num_layers):
        W, b = getattr(model.rnn, f"weight_ih_l{k}"), getattr(model.rnn, f"bias_ih_l{k}")
        H = W.shape[0] // 2
        h = x_t.new_zeros(x_t.shape[0], H) if state is None else state[k]
        z = torch.sigmoid(inp @ W[:H].T + b[:H])
        inp = torch.lerp(h, inp @ W[H:].T + b[H:], z)
        rows.append(inp)
    return model.head(inp), torch.stack(rows)


RIGHT["mingru"] = [mingru_linear, mingru_lerp]
RIGHT["stream_step"] = [stream_via_layer_step]


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("exercise, fn", [(e, f) for e, fs in RIGHT.items() for f in fs],
                         ids=lambda v: getattr(v, "__name__", str(v)))
def test_accepts_correct_code(exercise, fn, hidden):
    CHECKS[exercise](fn, hidden=hidden)


def test_right_answers_are_quiet(capfd):
    def noisy(a, b, h0):
        warnings.warn("a harmless warning")
        print("debug", file=sys.stderr)
        return parallel_scan(a, b, h0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_parallel_scan(noisy, hidden=True)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------- wrong code, by name
# Besides the simulated class's learners (classroom/wrong.py), these mistakes are
# checked here only: each would cost a notebook run in the simulated class.

def linear_recurrence_drops_h0(a, b, h0):
    h, states = torch.zeros_like(h0), []
    for t in range(a.shape[1]):
        h = a[:, t] * h + b[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


def parallel_scan_drops_h0(a, b, h0):
    A, Bv, d = a, b, 1
    while d < a.shape[1]:
        A_prev = torch.cat([torch.ones_like(A[:, :d]), A[:, :-d]], dim=1)
        B_prev = torch.cat([torch.zeros_like(Bv[:, :d]), Bv[:, :-d]], dim=1)
        A, Bv, d = A * A_prev, A * B_prev + Bv, 2 * d
    return Bv


def parallel_scan_off_by_one(a, b, h0):
    A, Bv, d = a, torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1), 1
    T = a.shape[1]
    while d < T:
        s = d + 1  # one step too far back
        if s < T:
            A_prev = torch.cat([torch.ones_like(A[:, :s]), A[:, :-s]], dim=1)
            B_prev = torch.cat([torch.zeros_like(Bv[:, :s]), Bv[:, :-s]], dim=1)
            A, Bv = A * A_prev, A * B_prev + Bv
        d *= 2
    return Bv


def parallel_scan_swaps_a_b(a, b, h0):
    return parallel_scan(b, a, h0)


def parallel_scan_ones_on_cpu(a, b, h0):
    B, T, H = a.shape
    A, Bv, d = a, torch.cat([a[:, :1] * h0[:, None] + b[:, :1], b[:, 1:]], dim=1), 1
    while d < T:
        A_prev = torch.cat([torch.ones(B, d, H, dtype=a.dtype), A[:, :-d]], dim=1)  # no device=
        B_prev = torch.cat([torch.zeros(B, d, H, dtype=a.dtype), Bv[:, :-d]], dim=1)
        A, Bv, d = A * A_prev, A * B_prev + Bv, 2 * d
    return Bv


def mingru_z_swapped(x, h0, W_ih, b_ih):
    k, h_tilde = (x @ W_ih.T + b_ih).chunk(2, dim=-1)
    z = torch.sigmoid(k)
    return parallel_scan(z, (1 - z) * h_tilde, h0)


def mingru_tanh(x, h0, W_ih, b_ih):
    k, h_tilde = (x @ W_ih.T + b_ih).chunk(2, dim=-1)
    z = torch.sigmoid(k)
    return parallel_scan(1 - z, z * torch.tanh(h_tilde), h0)


def mingru_loops(x, h0, W_ih, b_ih):
    k, h_tilde = (x @ W_ih.T + b_ih).chunk(2, dim=-1)
    z = torch.sigmoid(k)
    h, states = h0, []
    for t in range(x.shape[1]):
        h = (1 - z[:, t]) * h + z[:, t] * h_tilde[:, t]
        states.append(h)
    return torch.stack(states, dim=1)


LOCAL = {
    "linear_recurrence": {"recurrence_drops_h0": (linear_recurrence_drops_h0, "the initial state h0 is dropped")},
    "parallel_scan": {"scan_drops_h0": (parallel_scan_drops_h0, "the initial state h0 is dropped"),
                      "off_by_one": (parallel_scan_off_by_one, "d + 1 steps back"),
                      "scan_swaps_a_b": (parallel_scan_swaps_a_b, "a and b are swapped"),
                      "ones_on_cpu": (parallel_scan_ones_on_cpu, "'meta' device")},
    "mingru": {"mingru_z_swapped": (mingru_z_swapped, "(1 - z) and z are swapped"),
               "mingru_tanh": (mingru_tanh, "the candidate goes through tanh"),
               "mingru_loops": (mingru_loops, "is not parallel")},
}
WRONG = [(e, s, f, d) for e in CHECKS for s, (f, d) in {**shared(e), **LOCAL.get(e, {})}.items()]


@pytest.mark.parametrize("exercise, student, fn, diagnosis", WRONG, ids=[f"{w[0]}-{w[1]}" for w in WRONG])
@pytest.mark.parametrize("hidden", [False, True])
def test_rejects_wrong_code_by_name(exercise, student, fn, diagnosis, hidden):
    assert_rejected(CHECKS[exercise], fn, diagnosis, hidden=hidden)


def test_the_rounds_count_separates_log_from_linear():
    for fn in (parallel_scan, scan_odd_even, scan_blelloch):
        short, long_ = operations(fn, _round_args(SHORT), "x"), operations(fn, _round_args(LONG), "x")
        assert long_ <= GROWTH * short, fn.__name__
    short, long_ = operations(recurrence_unbind, _round_args(SHORT), "x"), operations(recurrence_unbind,
                                                                                      _round_args(LONG), "x")
    assert long_ > 20 * short
    # a chunked scan (loop over sqrt(T) blocks) is not O(log T) either
    def chunked(a, b, h0):
        T = a.shape[1]
        c = max(1, int(math.sqrt(T)))
        outs, h = [], h0
        for s in range(0, T, c):
            part = parallel_scan(a[:, s:s + c], b[:, s:s + c], h)
            outs.append(part)
            h = part[:, -1]
        return torch.cat(outs, 1)
    with pytest.raises(Exception, match="is not parallel"):
        check_parallel_scan(chunked)


def test_the_package_scans_are_blocked():
    assert_rejected(check_linear_recurrence, scan_sequential, "scan_sequential (rnncourse/scan.py) was called")


def test_the_cumprod_shortcut_is_rejected():
    # the same algebra as the log-space scan, outside log space: underflows, then divides by 0
    def shortcut(a, b, h0):
        P = torch.cumprod(a, 1)
        return P * (h0[:, None] + torch.cumsum(b / P, 1))
    for hidden in (False, True):
        assert_rejected(check_parallel_scan, shortcut, "T=3000): h contains", hidden=hidden)


@pytest.mark.parametrize("kw", [dict(order_swapped=True), dict(drop_h0=True), dict(shift=1), dict(shift=-1),
                                dict(rounds=-1), dict(rounds="skip_first"), dict(swap_ab=True)])
def test_every_named_scan_variant_is_rejected_with_its_own_name(kw):
    # a learner who wrote this mistake; the check's own helper computes it, unblocked
    msg = assert_rejected(check_parallel_scan, lambda a, b, h0: handed_to_learner(scan_variant)(a, b, h0, **kw),
                          "It matches")
    assert "not parallel" not in msg


def test_a_sequence_of_one_and_sizes_of_one_are_drawn():
    from rnncourse.checks.cases import build_cases
    from rnncourse.checks.modern import MINGRU_PLAN, SCAN_PLAN
    for plan in (SCAN_PLAN, MINGRU_PLAN):
        sizes = [c.sizes for c in build_cases(True, plan)]
        assert any(s["T"] == 1 for s in sizes) and any(s["B"] == 1 and s["H"] == 1 for s in sizes)
    Ts = {c.sizes["T"] for c in build_cases(True, SCAN_PLAN)}
    assert {1, 2, 8, 64} <= Ts and {5, 13, 100} <= Ts  # powers of two and not
