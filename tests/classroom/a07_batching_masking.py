"""Simulated learners of lesson 07: pad_batch, masked_cross_entropy, last_valid, masked_mean.

The four exercises are independent (no graded function calls another; the
notebook's later cells that use them are not graded), so each wrong submission
below must cost exactly its own exercise's points. The notebook trains a tagger
through the learner's masked_cross_entropy; a wrong loss changes what that cell
prints, not any score.
"""
from .submissions import Submission
from .wrong import (
    body, last_valid_arange_without_device, last_valid_reads_lengths, last_valid_reads_T_minus_1,
    masked_cross_entropy_divides_by_all_positions, masked_cross_entropy_mean_of_sequence_means,
    masked_mean_counts_padding, masked_mean_uses_library, pad_batch_mask_off_by_one, pad_batch_no_device,
    pad_batch_pads_left,
)

PAD, LOSS, LAST, MEAN = "test_pad_batch", "test_masked_cross_entropy", "test_last_valid", "test_masked_mean"

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (pad_sequence; ignore_index; a loop over rows; "
                       "float64 upcast and back)",
        bodies={
            "pad_batch": """
                padded = torch.nn.utils.rnn.pad_sequence(list(sequences), batch_first=True,
                                                         padding_value=pad_value)
                lengths = torch.as_tensor([len(s) for s in sequences], device=padded.device)
                mask = torch.stack([torch.arange(padded.shape[1], device=padded.device) < L for L in lengths])
                return padded, lengths, mask
            """,
            "masked_cross_entropy": """
                V = logits.shape[-1]
                ignored = targets.masked_fill(~mask, -100)
                return torch.nn.functional.cross_entropy(logits.reshape(-1, V), ignored.reshape(-1),
                                                         ignore_index=-100)
            """,
            "last_valid": """
                return torch.stack([outputs[b, int(lengths[b]) - 1] for b in range(outputs.shape[0])])
            """,
            "masked_mean": """
                w = mask.double()
                pooled = torch.einsum("bt,bth->bh", w / w.sum(1, keepdim=True), outputs.double())
                return pooled.to(outputs.dtype)
            """,
        }),
    Submission(
        "pads_left", "pad_batch pads on the left; masked_cross_entropy averages per-sequence means",
        bodies={"pad_batch": body(pad_batch_pads_left),
                "masked_cross_entropy": body(masked_cross_entropy_mean_of_sequence_means)},
        lost={PAD, LOSS}),
    Submission(
        "off_by_one", "pad_batch's mask is t <= lengths; last_valid reads position lengths",
        bodies={"pad_batch": body(pad_batch_mask_off_by_one), "last_valid": body(last_valid_reads_lengths)},
        lost={PAD, LAST}),
    Submission(
        "no_device", "pad_batch and last_valid make their tensors without device= (right on a CPU)",
        bodies={"pad_batch": body(pad_batch_no_device), "last_valid": body(last_valid_arange_without_device)},
        lost={PAD, LAST}),
    Submission(
        "counts_positions", "masked_cross_entropy divides by B*T; last_valid reads outputs[:, -1]",
        bodies={"masked_cross_entropy": body(masked_cross_entropy_divides_by_all_positions),
                "last_valid": body(last_valid_reads_T_minus_1)},
        lost={LOSS, LAST}),
    Submission(
        "mean_counts_padding", "masked_mean is outputs.mean(1), the padding counted",
        bodies={"masked_mean": body(masked_mean_counts_padding)}, lost={MEAN}),
    Submission(
        "uses_library", "masked_mean calls rnncourse.masking.masked_mean",
        bodies={"masked_mean": body(masked_mean_uses_library)}, lost={MEAN}),
]

REGRADE = "no_device"
