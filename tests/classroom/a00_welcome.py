"""Simulated learners of lesson 00: one_hot(indices, num_classes), embed(indices, weight)."""
from .submissions import Submission
from .wrong import body, embed_columns, one_hot_from_max

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (F.one_hot; one-hot matrix product)",
        bodies={
            "one_hot": "return torch.nn.functional.one_hot(indices, num_classes).float()",
            "embed": "return torch.nn.functional.one_hot(indices, weight.shape[0]).to(weight) @ weight",
        }),
    Submission(
        "one_hot_from_max", "one_hot sizes its last axis from indices.max() + 1",
        bodies={"one_hot": body(one_hot_from_max)},
        lost={"test_one_hot"}),
    Submission(
        "embed_columns", "embed picks columns: weight[:, indices]",
        bodies={"embed": body(embed_columns)},
        lost={"test_embed"}),
]
