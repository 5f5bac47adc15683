"""Simulated learners of lesson 01: rnn_step, rnn_forward, next_token_probs.

The lesson asks rnn_forward to call the learner's rnn_step, so a wrong step
costs the forward's points too; the learners with a wrong step here write a
forward of their own (the recurrence inline) so that each mistake is seen
costing its own exercise and nothing else.
"""
from .submissions import Submission
from .wrong import (
    body, next_token_probs_softmax_over_batch, rnn_forward_state_not_carried,
    rnn_forward_time_first, rnn_forward_uses_library, rnn_step_W_hh_transposed,
    rnn_step_no_b_hh, rnn_step_no_tanh, rnn_step_uses_library,
)

STEP, FORWARD, PROBS = "test_rnn_step", "test_rnn_forward", "test_next_token_probs"

# A correct forward that does not call rnn_step.
OWN_FORWARD = """
h, states = h0, []
for t in range(x.shape[1]):
    h = torch.tanh(x[:, t] @ W_ih.T + b_ih + h @ W_hh.T + b_hh)
    states.append(h)
return torch.stack(states, dim=1), h
"""

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (F.linear, precomputed inputs, stable softmax)",
        bodies={
            "rnn_step": "return torch.tanh(F.linear(x_t, W_ih, b_ih) + F.linear(h_prev, W_hh, b_hh))",
            "rnn_forward": """
                xw = torch.einsum("bti,hi->bth", x, W_ih) + b_ih   # all input projections at once
                outputs = x.new_empty(x.shape[0], x.shape[1], h0.shape[1])
                h = h0
                for t in range(x.shape[1]):
                    h = torch.tanh(xw[:, t] + h @ W_hh.T + b_hh)
                    outputs[:, t] = h
                return outputs, h
            """,
            "next_token_probs": """
                z = torch.addmm(b_y, h, W_hy.t())
                z = z - z.max(dim=1, keepdim=True).values
                return z.exp() / z.exp().sum(dim=1, keepdim=True)
            """,
        }),
    Submission(
        "W_hh_transposed", "rnn_step multiplies by W_hh instead of W_hh.T",
        bodies={"rnn_step": body(rnn_step_W_hh_transposed),
                "rnn_forward": OWN_FORWARD},
        lost={STEP}),
    Submission(
        "no_tanh", "rnn_step leaves out the tanh",
        bodies={"rnn_step": body(rnn_step_no_tanh),
                "rnn_forward": OWN_FORWARD},
        lost={STEP}),
    Submission(
        "no_b_hh", "rnn_step leaves out b_hh",
        bodies={"rnn_step": body(rnn_step_no_b_hh),
                "rnn_forward": OWN_FORWARD},
        lost={STEP}),
    Submission(
        "state_not_carried", "rnn_forward restarts every step from h0",
        bodies={"rnn_forward": body(rnn_forward_state_not_carried)},
        lost={FORWARD}),
    Submission(
        "softmax_over_batch", "next_token_probs normalises over the batch (dim=0)",
        bodies={"next_token_probs": body(next_token_probs_softmax_over_batch)},
        lost={PROBS}),
    Submission(
        "time_first", "rnn_forward indexes time on axis 0 and raises",
        bodies={"rnn_forward": body(rnn_forward_time_first)},
        lost={FORWARD}),
    Submission(
        "endless_loop", "next_token_probs never returns",
        bodies={"next_token_probs": "while True:\n    pass"},
        lost={PROBS}),
    Submission(
        "uses_library", "rnn_step calls rnncourse.RNNCell, rnn_forward calls torch.nn.RNN",
        bodies={
            "rnn_step": body(rnn_step_uses_library),
            "rnn_forward": body(rnn_forward_uses_library),
        },
        lost={STEP, FORWARD}),
    Submission(
        "edits_test", "rnn_step left as the stub; its test cell replaced by a print",
        bodies={"rnn_step": "raise NotImplementedError()", "rnn_forward": OWN_FORWARD},
        edits={STEP: 'print("all tests passed")'},
        lost={STEP}),
    Submission(
        "deletes_test", "deletes the test of a correct next_token_probs; tags a test skip-execution",
        bodies={"rnn_forward": "raise NotImplementedError()"},
        deleted=(PROBS,),
        tags={FORWARD: ["skip-execution"]},
        lost={FORWARD}),
]

# Graded a second time to show the scores do not move: mixed marks, and a
# restored test cell, the part of grading most likely to drift.
REGRADE = "deletes_test"
