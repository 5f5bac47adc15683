"""Simulated learners of lesson 03: jacobian_norms and clip_grad_norm_.

The two exercises are independent, so each wrong submission changes one function
and must lose that exercise's points only.
"""
from .submissions import Submission

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
        bodies={"jacobian_norms": """
            B, T1, H = states.shape
            P = torch.eye(H, dtype=states.dtype, device=states.device).expand(B, H, H)
            norms = [torch.linalg.matrix_norm(P, ord=2)]
            for k in range(T1 - 1, 0, -1):
                P = P @ ((1 - states[:, k] ** 2)[:, :, None] * W_hh.T)
                norms.append(torch.linalg.matrix_norm(P, ord=2))
            return torch.stack(norms[::-1], dim=1)
        """},
        lost={NORMS}),
    Submission(
        "post_clip_norm", "clip_grad_norm_ returns the norm after clipping",
        bodies={"clip_grad_norm_": """
            params = [p for p in parameters if p.grad is not None]
            total = torch.sqrt(sum((p.grad ** 2).sum() for p in params))
            if total > max_norm:
                for p in params:
                    p.grad.mul_(max_norm / total)
            return torch.sqrt(sum((p.grad ** 2).sum() for p in params))
        """},
        lost={CLIP}),
    Submission(
        "per_parameter", "clip_grad_norm_ clips each gradient by its own norm",
        bodies={"clip_grad_norm_": """
            total = 0.0
            for p in parameters:
                if p.grad is not None:
                    n = p.grad.norm()
                    total = total + n ** 2
                    if n > max_norm:
                        p.grad.mul_(max_norm / n)
            return total ** 0.5
        """},
        lost={CLIP}),
    Submission(
        "calls_torch", "clip_grad_norm_ calls torch.nn.utils.clip_grad_norm_",
        bodies={"clip_grad_norm_": "return torch.nn.utils.clip_grad_norm_(parameters, max_norm)"},
        lost={CLIP}),
]

REGRADE = "post_clip_norm"
