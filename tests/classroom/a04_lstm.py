"""Simulated learners of lesson 04: lstm_step, lstm_forward, peephole_lstm_step.

The lesson asks lstm_forward to call the learner's lstm_step, so a wrong step
costs the forward's points too; the learner with a wrong step here writes a
forward of its own (the step inline) so that the mistake is seen costing its
own exercise and nothing else. peephole_lstm_step is written on its own in the
solution, so a wrong plain step does not touch it.
"""
from .submissions import Submission
from .wrong import (
    body, lstm_forward_cell_not_carried, lstm_forward_uses_library,
    lstm_step_gate_order_ifog, lstm_step_uses_library, peephole_old_c, peephole_uses_library,
)

STEP, FORWARD, PEEPHOLE = "test_lstm_step", "test_lstm_forward", "test_peephole_lstm_step"

# A correct forward that does not call lstm_step.
OWN_FORWARD = """
h, c, outputs = h0, c0, []
for t in range(x.shape[1]):
    i, f, g, o = (x[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    outputs.append(h)
return torch.stack(outputs, dim=1), (h, c)
"""

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (per-gate F.linear; precomputed inputs; diagonal peepholes)",
        bodies={
            "lstm_step": """
                H = h_prev.shape[1]
                F = torch.nn.functional
                pre = [F.linear(x_t, W_ih[k * H:(k + 1) * H], b_ih[k * H:(k + 1) * H])
                       + F.linear(h_prev, W_hh[k * H:(k + 1) * H], b_hh[k * H:(k + 1) * H]) for k in range(4)]
                c_t = torch.addcmul(pre[1].sigmoid() * c_prev, pre[0].sigmoid(), pre[2].tanh())
                return pre[3].sigmoid() * c_t.tanh(), c_t
            """,
            "lstm_forward": """
                B, T, _ = x.shape
                H = h0.shape[1]
                gx = torch.einsum("bti,gi->btg", x, W_ih) + b_ih + b_hh   # all input projections at once
                outputs = x.new_empty(B, T, H)
                h, c = h0, c0
                for t in range(T):
                    i, f, g, o = (gx[:, t] + h @ W_hh.T).split(H, dim=1)
                    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
                    h = o.sigmoid() * c.tanh()
                    outputs[:, t] = h
                return outputs, (h, c)
            """,
            "peephole_lstm_step": """
                H = h_prev.shape[1]
                z = x_t @ W_ih.T + h_prev @ W_hh.T + b_ih + b_hh
                i = torch.sigmoid(z[:, :H] + c_prev @ torch.diag(w_ci))
                f = torch.sigmoid(z[:, H:2 * H] + c_prev @ torch.diag(w_cf))
                c_t = f * c_prev + i * torch.tanh(z[:, 2 * H:3 * H])
                o = torch.sigmoid(z[:, 3 * H:] + c_t @ torch.diag(w_co))
                return o * torch.tanh(c_t), c_t
            """,
        }),
    Submission(
        "gate_order_ifog", "lstm_step reads the gate rows as i, f, o, g (a paper's order)",
        bodies={"lstm_step": body(lstm_step_gate_order_ifog),
                "lstm_forward": OWN_FORWARD},
        lost={STEP}),
    Submission(
        "cell_not_carried", "lstm_forward carries h but restarts every step from c0",
        bodies={"lstm_forward": body(lstm_forward_cell_not_carried)},
        lost={FORWARD}),
    Submission(
        "peephole_old_c", "peephole_lstm_step lets the output gate peek at c_prev instead of the new c_t",
        bodies={"peephole_lstm_step": body(peephole_old_c)},
        lost={PEEPHOLE}),
    Submission(
        "uses_library", "lstm_step calls torch.nn.LSTMCell, lstm_forward rnncourse.LSTM, "
                        "peephole_lstm_step rnncourse.PeepholeLSTMCell",
        bodies={
            "lstm_step": body(lstm_step_uses_library),
            "lstm_forward": body(lstm_forward_uses_library),
            "peephole_lstm_step": body(peephole_uses_library),
        },
        lost={STEP, FORWARD, PEEPHOLE}),
]
