"""Simulated learners of lesson 03: jacobian_norms and clip_grad_norm_.

The two exercises are independent, so each wrong submission changes one function
and must lose that exercise's points only.
"""
from .submissions import Submission
from .wrong import (
    body, clip_calls_torch, clip_per_parameter, clip_post_clip_norm,
    jacobian_norms_W_hh_transposed,
)

NORMS, CLIP = "test_jacobian_norms", "test_clip_grad_norm_"

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (row-vector chain per sequence with svdvals; "
        "flattened gradients, new p.grad tensors, a float returned)",
        bodies={
            "jacobian_norms": """
                B, T1, H = states.shape
                norms = states.new_ones(B, T1)
                for b in range(B):
                    Q = torch.eye(H, dtype=states.dtype, device=states.device)
                    for k in range(T1 - 1, 0, -1):
                        Q = W_hh.T @ torch.diag(1 - states[b, k] ** 2) @ Q  # the transposed chain
                        norms[b, k - 1] = torch.linalg.svdvals(Q)[0]
                return norms
            """,
            "clip_grad_norm_": """
                params = [p for p in parameters if p.grad is not None]
                total = torch.cat([p.grad.reshape(-1) for p in params]).norm().item()
                if total > max_norm:
                    for p in params:
                        p.grad = p.grad * (max_norm / total)
                return total
            """,
        }),
    Submission(
        "W_hh_transposed", "jacobian_norms uses diag(1 - h_k^2) W_hh.T",
        bodies={"jacobian_norms": body(jacobian_norms_W_hh_transposed)},
        lost={NORMS}),
    Submission(
        "post_clip_norm", "clip_grad_norm_ returns the norm after clipping",
        bodies={"clip_grad_norm_": body(clip_post_clip_norm)},
        lost={CLIP}),
    Submission(
        "per_parameter", "clip_grad_norm_ clips each gradient by its own norm",
        bodies={"clip_grad_norm_": body(clip_per_parameter)},
        lost={CLIP}),
    Submission(
        "calls_torch", "clip_grad_norm_ calls torch.nn.utils.clip_grad_norm_",
        bodies={"clip_grad_norm_": body(clip_calls_torch)},
        lost={CLIP}),
]

REGRADE = "post_clip_norm"
