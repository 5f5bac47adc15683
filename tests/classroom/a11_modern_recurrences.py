"""Simulated learners of lesson 11: linear_recurrence, parallel_scan, mingru, stream_step.

mingru is built on the learner's own parallel_scan (the notebook says so), so a
wrong or sequential scan costs mingru's points too: those submissions lose both.
The other exercises are independent, and a mistake costs only its own points.
"""
from .submissions import Submission
from .wrong import (
    body, mingru_gate_reads_state, parallel_scan_combine_order, parallel_scan_loop_in_disguise,
    linear_recurrence_shifted, stream_step_keeps_history, stream_step_state_not_carried,
    stream_step_zeros_on_cpu,
)

REC, SCAN, MIN, STREAM = "test_linear_recurrence", "test_parallel_scan", "test_mingru", "test_stream_step"

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (unbind and addcmul; a recursive odd-even scan; "
                       "F.linear per block; lerp in the stream)",
        bodies={
            "linear_recurrence": """
                out, h = [], h0
                for a_t, b_t in zip(a.unbind(1), b.unbind(1)):
                    h = torch.addcmul(b_t, a_t, h)
                    out.append(h)
                return torch.stack(out, 1)
            """,
            "parallel_scan": """
                def scan(A, Bv):  # pairs of neighbours, a scan half as long, then the evens
                    T = A.shape[1]
                    if T == 1:
                        return A, Bv
                    n = T // 2
                    A2 = A[:, 1:2 * n:2] * A[:, 0:2 * n:2]
                    B2 = A[:, 1:2 * n:2] * Bv[:, 0:2 * n:2] + Bv[:, 1:2 * n:2]
                    SA, SB = scan(A2, B2)
                    EA = A[:, 2::2] * SA[:, :(T - 1) // 2]
                    EB = A[:, 2::2] * SB[:, :(T - 1) // 2] + Bv[:, 2::2]
                    idx = torch.arange(T, device=A.device)
                    A_out = torch.empty_like(A).index_copy(1, idx[0::2], torch.cat([A[:, :1], EA], 1))
                    B_out = torch.empty_like(Bv).index_copy(1, idx[0::2], torch.cat([Bv[:, :1], EB], 1))
                    return A_out.index_copy(1, idx[1::2], SA), B_out.index_copy(1, idx[1::2], SB)
                first = a[:, :1] * h0.unsqueeze(1) + b[:, :1]
                return scan(a, torch.cat([first, b[:, 1:]], 1))[1]
            """,
            "mingru": """
                H = h0.shape[-1]
                z = torch.sigmoid(torch.nn.functional.linear(x, W_ih[:H], b_ih[:H]))
                h_tilde = torch.nn.functional.linear(x, W_ih[H:], b_ih[H:])
                return parallel_scan(1 - z, z * h_tilde, h0)
            """,
            "stream_step": """
                rows, inp = [], x_t
                for k in range(model.rnn.num_layers):
                    W, b = getattr(model.rnn, f"weight_ih_l{k}"), getattr(model.rnn, f"bias_ih_l{k}")
                    H = W.shape[0] // 2
                    h = x_t.new_zeros(x_t.shape[0], H) if state is None else state[k]
                    z = torch.sigmoid(inp @ W[:H].T + b[:H])
                    inp = torch.lerp(h, inp @ W[H:].T + b[H:], z)
                    rows.append(inp)
                return model.head(inp), torch.stack(rows)
            """,
        }),
    Submission(
        "recurrence_shifted", "linear_recurrence returns h_0 .. h_{T-1}",
        bodies={"linear_recurrence": body(linear_recurrence_shifted)}, lost={REC}),
    Submission(
        "loop_in_disguise", "parallel_scan is a loop through functools.reduce (so mingru, built on it, is too)",
        bodies={"parallel_scan": body(parallel_scan_loop_in_disguise)}, lost={SCAN, MIN}),
    Submission(
        "combine_order", "parallel_scan applies the earlier map last (so mingru, built on it, is wrong too)",
        bodies={"parallel_scan": body(parallel_scan_combine_order)}, lost={SCAN, MIN}),
    Submission(
        "gate_reads_state", "mingru feeds h_{t-1} into the update gate, in a loop",
        bodies={"mingru": body(mingru_gate_reads_state)}, lost={MIN}),
    Submission(
        "state_not_carried", "stream_step starts every token from a zero state",
        bodies={"stream_step": body(stream_step_state_not_carried)}, lost={STREAM}),
    Submission(
        "keeps_history", "stream_step keeps every input and reruns the prefix: a growing state",
        bodies={"stream_step": body(stream_step_keeps_history)}, lost={STREAM}),
    Submission(
        "zeros_on_cpu", "stream_step makes its first state on the CPU, whatever the input's device",
        bodies={"stream_step": body(stream_step_zeros_on_cpu)}, lost={STREAM}),
]

REGRADE = "combine_order"
