"""Simulated learners of lesson 05: gru_step and count_parameters.

The two exercises are independent (nothing graded calls the other), so each
wrong submission below must cost exactly its own exercise's points.
"""
from .submissions import Submission
from .wrong import (
    body, count_parameters_counts_a_module, count_parameters_deep_layers_read_input,
    gru_step_cho_reset, gru_step_z_swapped,
)

STEP, COUNT = "test_gru_step", "test_count_parameters"

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (sliced blocks, lerp; counts from a list of shapes)",
        bodies={
            "gru_step": """
                H = h_prev.shape[1]
                W_ir, W_iz, W_in = W_ih[:H], W_ih[H:2 * H], W_ih[2 * H:]
                W_hr, W_hz, W_hn = W_hh[:H], W_hh[H:2 * H], W_hh[2 * H:]
                b_ir, b_iz, b_in = b_ih[:H], b_ih[H:2 * H], b_ih[2 * H:]
                b_hr, b_hz, b_hn = b_hh[:H], b_hh[H:2 * H], b_hh[2 * H:]
                r = torch.sigmoid(torch.addmm(b_ir, x_t, W_ir.t()) + torch.addmm(b_hr, h_prev, W_hr.t()))
                z = torch.sigmoid(torch.addmm(b_iz, x_t, W_iz.t()) + torch.addmm(b_hz, h_prev, W_hz.t()))
                n = torch.tanh(torch.addmm(b_in, x_t, W_in.t()) + r * torch.addmm(b_hn, h_prev, W_hn.t()))
                return torch.lerp(n, h_prev, z)
            """,
            "count_parameters": """
                import math
                rows = {"rnn": 1, "lstm": 4, "gru": 3}[kind.lower()] * hidden_size
                directions = 2 if bidirectional else 1
                shapes = []
                for layer in range(num_layers):
                    inputs = input_size if layer == 0 else directions * hidden_size
                    for _ in range(directions):
                        shapes += [(rows, inputs), (rows, hidden_size)]
                        if bias:
                            shapes += [(rows,), (rows,)]
                return sum(math.prod(s) for s in shapes)
            """,
        }),
    Submission(
        "cho_reset", "gru_step applies the reset gate before the matmul, as in Cho et al. (2014)",
        bodies={"gru_step": body(gru_step_cho_reset)},
        lost={STEP}),
    Submission(
        "z_swapped", "gru_step mixes h = z * n + (1 - z) * h_prev (Wikipedia's convention)",
        bodies={"gru_step": body(gru_step_z_swapped)},
        lost={STEP}),
    Submission(
        "counts_a_module", "count_parameters builds torch.nn.<kind> and sums its parameters",
        bodies={"count_parameters": body(count_parameters_counts_a_module)},
        lost={COUNT}),
    Submission(
        "deep_layers_read_input", "count_parameters: every layer reads input_size inputs, one bias vector",
        bodies={"count_parameters": body(count_parameters_deep_layers_read_input)},
        lost={COUNT}),
]

REGRADE = "cho_reset"
