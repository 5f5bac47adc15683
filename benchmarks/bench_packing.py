"""Packing against masking: the same LSTM classifier on the same padded batch of
late-flip reviews (lengths 5-100), once on the padded tensor read at ``lengths - 1``
(masking) and once on a PackedSequence read from ``h_n`` (packing).

    .venv/bin/python benchmarks/bench_packing.py                 # CPU, 1 thread
    .venv/bin/python benchmarks/bench_packing.py --threads 2 --reps 10
    .venv/bin/python benchmarks/bench_packing.py --device cuda   # on a GPU (cuDNN)

For each size (batch B, hidden H) it prints the largest difference between the
two ways' logits, loss and weight gradients (they compute the same thing on the
real tokens, so these are rounding), the best time of a forward and backward
pass of each, and how much packing saves: ``1 - packed / masked`` (negative:
packing was slower). The claim it tests is the often-repeated "packing is
20-40% faster". The figures depend on the machine and its load; record
``uptime``'s load average next to them.
"""
from __future__ import annotations

import argparse
import os

import torch

from rnncourse.data.sentiment import VOCAB_SIZE, sentiment_batch
from rnncourse.explore.masking_costs import packing_vs_masking

SIZES = [(32, 32), (64, 64), (128, 128), (256, 256)]  # (B, H)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads while timing")
    parser.add_argument("--reps", type=int, default=5, help="timed repeats; the best is kept")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {args.threads} thread(s)"
    print(f"torch {torch.__version__}, {name}, load average {load:.1f}")
    print(f"{'B':>4} {'H':>4} {'padding':>8} {'max diff':>9} {'masked ms':>10} {'packed ms':>10} {'packing saves':>14}")
    for B, H in SIZES:
        tokens, lengths, labels = sentiment_batch(B, generator=B)
        r = packing_vs_masking(tokens, lengths, labels, VOCAB_SIZE, E=16, H=H, device=device,
                               repeats=args.reps, threads=args.threads)
        diff = max(r["logits_diff"], r["loss_diff"], r["grad_diff"])
        print(f"{B:>4} {H:>4} {r['padding_fraction']:>8.0%} {diff:>9.1e} {1e3 * r['masked_s']:>10.2f} "
              f"{1e3 * r['packed_s']:>10.2f} {r['packed_saves']:>14.0%}")


if __name__ == "__main__":
    main()
