"""The known wrong variants of lesson 07's exercises, computed for one case.

Each function returns ``phrase -> value``, the phrase completing "it matches what
you get if ..."; a variant that cannot be computed for the case (no padding to
count, an index out of range) is None or left out. All inputs are CPU tensors,
floats in float64 (:func:`rnncourse.checks.cases.on_cpu64`).
"""
from __future__ import annotations

import torch

from rnncourse import masking


def _pad(seqs, pad_value, T=None, side="right", lengths=None):
    """Sequences padded to T (default: the longest) on ``side``; ``lengths`` overrides
    how much of each sequence is copied (for the off-by-one variants)."""
    T = max(s.shape[0] for s in seqs) if T is None else T
    out = seqs[0].new_full((len(seqs), T, *seqs[0].shape[1:]), pad_value)
    for b, s in enumerate(seqs):
        L = s.shape[0]
        if side == "right":
            out[b, :L] = s
        else:
            out[b, T - L:] = s
    return out


def pad_variants(seqs, pad_value, ref) -> dict:
    """{"padded": ..., "lengths": ..., "mask": ...}, each phrase -> tensor."""
    lengths, T = ref.lengths, ref.mask.shape[1]
    t = torch.arange(T)
    padded = {
        "the padding goes on the left (before each sequence) instead of the right":
            _pad(seqs, pad_value, side="left"),
    }
    if pad_value != 0:
        padded["the padding is 0 instead of pad_value"] = _pad(seqs, 0)
    mask = {
        "the mask compares t <= lengths (one position too many: lengths off by one)":
            t[None] <= lengths[:, None],
        "the mask compares t < lengths - 1 (one real position too few: lengths off by one)":
            t[None] < (lengths - 1)[:, None],
        "the mask is inverted: True at the padding instead of the real tokens":
            t[None] >= lengths[:, None],
        "the mask marks left padding (the real tokens at the end of each row)":
            t[None] >= (T - lengths)[:, None],
    }
    # a real token equal to pad_value is then taken for padding
    mask["the mask is built from padded != pad_value instead of the lengths"] = (
        (ref.padded != pad_value).reshape(len(seqs), T, -1).any(-1))
    lens = {
        "lengths are one less than the number of tokens (the last index, not the count)": lengths - 1,
        "lengths are one more than the number of tokens": lengths + 1,
        "every length is T (the padded length)": torch.full_like(lengths, T),
    }
    return {"padded": padded, "lengths": lens, "mask": mask}


def _nll(a):
    logp = torch.log_softmax(a["logits"], dim=-1)  # (B, T, V)
    return -logp.gather(-1, a["targets"].unsqueeze(-1)).squeeze(-1)  # (B, T), pads included


def loss_variants(a) -> dict:
    """Scalar variants of the masked cross-entropy."""
    nll, m = _nll(a), a["mask"].double()
    B, T = m.shape
    real = (nll * m).sum()
    per_seq = (nll * m).sum(1) / m.sum(1).clamp(min=1)
    out = {
        "the sum over the real tokens is divided by all B·T positions, padding included":
            float(real / (B * T)),
        "the loss is a mean of per-sequence means (each sequence weighted equally) instead of "
        "the mean over all real tokens": float(per_seq.mean()),
        "the padding is counted: the mean is over every position, the padded targets included":
            float(nll.mean()),
        "the loss is the sum over the real tokens, not their mean": float(real),
        "the loss is the mean over sequences of per-sequence sums": float((nll * m).sum(1).mean()),
        "the log-softmax is taken over the time axis instead of the classes":
            float(-(torch.log_softmax(a["logits"], dim=1).gather(-1, a["targets"].unsqueeze(-1))
                    .squeeze(-1) * m).sum() / m.sum()),
        "the raw logit of the target is used instead of its log-softmax (no normalisation)":
            float(-(a["logits"].gather(-1, a["targets"].unsqueeze(-1)).squeeze(-1) * m).sum() / m.sum()),
    }
    if (m == 0).any():
        out["the mask is inverted: the loss is taken over the padding"] = float(
            (nll * (1 - m)).sum() / (1 - m).sum())
    return out


def last_variants(a) -> dict:
    out, lengths = a["outputs"], a["lengths"]
    B, T, H = out.shape
    rows = torch.arange(B)
    v = {"it reads the last padded position T-1 instead of each sequence's last real one, lengths - 1":
         out[:, -1]}
    if int(lengths.max()) < T:
        v["it reads position lengths instead of lengths - 1 (one step into the padding)"] = out[rows, lengths]
    v["it reads the first position of every sequence"] = out[:, 0]
    if int(lengths.min()) >= 2:
        v["it reads position lengths - 2 (one step too early)"] = out[rows, lengths - 2]
    return v


def mean_variants(a) -> dict:
    out, mask = a["outputs"], a["mask"]
    m = mask.double().unsqueeze(-1)  # (B, T, 1)
    T = out.shape[1]
    n = m.sum(1)  # (B, 1)
    return {
        "the pooling counts the padding: the mean is over all T positions (outputs.mean(1))": out.mean(1),
        "the padding is zeroed but still counted: the masked sum is divided by T instead of the "
        "number of real tokens": (out * m).sum(1) / T,
        "the padding is summed: all outputs are summed and divided by the number of real tokens":
            out.sum(1) / n,
        "it returns the masked sum, not the mean": (out * m).sum(1),
        "the masked sum is divided by the number of real tokens in the whole batch": (out * m).sum(1) / m.sum(),
        "the mean is over the real tokens of a right-padded batch (the first mask.sum() positions), "
        "but this mask's True entries are not the first ones": _prefix_mean(out, mask),
        "the mask is inverted: the mean is over the padding": (out * (1 - m)).sum(1) / (1 - m).sum(1)
        if bool(((1 - m).sum(1) > 0).all()) else None,
    }


def _prefix_mean(out, mask):
    lengths = mask.sum(1)
    pre = masking.lengths_to_mask(lengths, out.shape[1])
    if torch.equal(pre, mask):
        return None
    return masking.masked_mean(out, pre)
