"""Simulated learners of lesson 02: rnn_backward, batchify, tbptt_batches.

The three exercises are independent (each check builds its own inputs), so each
wrong learner below gets exactly one exercise wrong and must lose only its points.
"""
from .submissions import Submission
from .wrong import (
    body, batchify_interleaved, rnn_backward_no_tanh_derivative, rnn_backward_uses_autograd,
    tbptt_batches_unshifted,
)

BACKWARD, BATCHIFY, CHUNKS = "test_rnn_backward", "test_batchify", "test_tbptt_batches"

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (own forward, per-step accumulation, "
        "stacked rows, split + zip)",
        bodies={
            "rnn_backward": """
                B, T, _ = x.shape
                hs = [h0]
                for t in range(T):
                    hs.append(torch.tanh(F.linear(x[:, t], W_ih, b_ih) + F.linear(hs[-1], W_hh, b_hh)))
                grads = [torch.zeros_like(p) for p in (W_ih, W_hh, b_ih)]
                dx = [None] * T
                g = torch.zeros_like(h0)
                for t in reversed(range(T)):
                    dz = (dh[:, t] + g) * (1 - hs[t + 1] * hs[t + 1])
                    dx[t] = dz @ W_ih
                    grads[0] = grads[0] + dz.t() @ x[:, t]
                    grads[1] = grads[1] + dz.t() @ hs[t]
                    grads[2] = grads[2] + dz.sum(0)
                    g = dz @ W_hh
                return torch.stack(dx, 1), g, grads[0], grads[1], grads[2], grads[2]
            """,
            "batchify": """
                L = len(tokens) // batch_size
                return torch.stack([tokens[b * L:(b + 1) * L] for b in range(batch_size)])
            """,
            "tbptt_batches": """
                return list(zip(streams[:, :-1].split(seq_len, dim=1), streams[:, 1:].split(seq_len, dim=1)))
            """,
        }),
    Submission(
        "uses_autograd", "rnn_backward asks autograd for the gradients instead of deriving them",
        bodies={"rnn_backward": body(rnn_backward_uses_autograd)},
        lost={BACKWARD}),
    Submission(
        "no_tanh_derivative", "rnn_backward leaves out the tanh derivative (1 - h**2)",
        bodies={"rnn_backward": body(rnn_backward_no_tanh_derivative)},
        lost={BACKWARD}),
    Submission(
        "interleaved_streams", "batchify deals the tokens out in turn (view(L, B).T)",
        bodies={"batchify": body(batchify_interleaved)},
        lost={BATCHIFY}),
    Submission(
        "unshifted_targets", "tbptt_batches returns targets equal to the inputs",
        bodies={"tbptt_batches": body(tbptt_batches_unshifted)},
        lost={CHUNKS}),
]

# Graded a second time: mixed marks from a check that blocks autograd mid-run.
REGRADE = "uses_autograd"
