"""Simulated learners of lesson 05: gru_step and count_parameters.

The two exercises are independent (nothing graded calls the other), so each
wrong submission below must cost exactly its own exercise's points.
"""
from .submissions import Submission

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
        bodies={"gru_step": """
            W_ir, W_iz, W_in = W_ih.chunk(3)
            W_hr, W_hz, W_hn = W_hh.chunk(3)
            b_ir, b_iz, b_in = b_ih.chunk(3)
            b_hr, b_hz, b_hn = b_hh.chunk(3)
            r = torch.sigmoid(x_t @ W_ir.T + b_ir + h_prev @ W_hr.T + b_hr)
            z = torch.sigmoid(x_t @ W_iz.T + b_iz + h_prev @ W_hz.T + b_hz)
            n = torch.tanh(x_t @ W_in.T + b_in + (r * h_prev) @ W_hn.T + b_hn)
            return (1 - z) * n + z * h_prev
        """},
        lost={STEP}),
    Submission(
        "z_swapped", "gru_step mixes h = z * n + (1 - z) * h_prev (Wikipedia's convention)",
        bodies={"gru_step": """
            x_r, x_z, x_n = (x_t @ W_ih.T + b_ih).chunk(3, dim=1)
            h_r, h_z, h_n = (h_prev @ W_hh.T + b_hh).chunk(3, dim=1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            return z * n + (1 - z) * h_prev
        """},
        lost={STEP}),
    Submission(
        "counts_a_module", "count_parameters builds torch.nn.<kind> and sums its parameters",
        bodies={"count_parameters": """
            module = getattr(torch.nn, kind)(input_size, hidden_size, num_layers=num_layers,
                                             bidirectional=bidirectional, bias=bias)
            return sum(p.numel() for p in module.parameters())
        """},
        lost={COUNT}),
    Submission(
        "deep_layers_read_input", "count_parameters: every layer reads input_size inputs, one bias vector",
        bodies={"count_parameters": """
            G = {"RNN": 1, "LSTM": 4, "GRU": 3}[kind] * hidden_size
            D = 2 if bidirectional else 1
            per_layer = G * input_size + G * hidden_size + (G if bias else 0)
            return num_layers * D * per_layer
        """},
        lost={COUNT}),
]

REGRADE = "cho_reset"
