"""Forward+backward time of the three linear-recurrence scans against T.

    .venv/bin/python benchmarks/bench_scan.py                 # T = 64 .. 8192
    .venv/bin/python benchmarks/bench_scan.py --lengths 256 4096 --reps 10 --threads 1

Each form of rnncourse.scan computes h_t = a_t h_{t-1} + b_t over a (B, T, H) batch:
the loop (T dependent steps), Hillis–Steele (ceil(log2 T) rounds of O(T) work each,
O(T log T) in all) and the log-space form (cumsum and logcumsumexp, O(T) work in
torch's own scans, complex arithmetic). Each timing is the median of --reps runs
after a warm-up, the forms alternating run by run so background load hits all
alike. Runs on the GPU when one is present; the loop's per-step overhead against the
scan's extra work is what decides the winner, so the answer differs by device.
The printed table records the device, threads and load average next to the times.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from rnncourse.scan import scan_log, scan_parallel, scan_rounds, scan_sequential

FORMS = {"sequential": lambda a, b, h0: scan_sequential(a, b, h0),
         "parallel": lambda a, b, h0: scan_parallel(a, b, h0),
         "log": lambda a, b, h0: scan_log(a.log(), b, h0)}


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench(T: int, B: int, H: int, reps: int, device: torch.device) -> dict:
    gen = torch.Generator().manual_seed(T)
    a = (0.05 + 0.9 * torch.rand(B, T, H, generator=gen)).to(device).requires_grad_()  # (B, T, H)
    b = torch.randn(B, T, H, generator=gen).to(device).requires_grad_()
    h0 = torch.randn(B, H, generator=gen).to(device).requires_grad_()
    times = {name: [] for name in FORMS}
    for rep in range(reps + 1):  # the first round warms up
        for name, fn in FORMS.items():
            sync(device)
            start = time.perf_counter()
            fn(a, b, h0).sum().backward()
            sync(device)
            if rep:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[64, 256, 1024, 4096, 8192])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    print(f"device {device}, {torch.get_num_threads()} threads, B={args.batch}, H={args.hidden}, "
          f"load average {os.getloadavg()[0]:.2f}; ms per forward+backward (median of {args.reps})")
    print(f"{'T':>6} {'rounds':>6}" + "".join(f"{n:>12}" for n in FORMS) + "   fastest")
    for T in args.lengths:
        r = bench(T, args.batch, args.hidden, args.reps, device)
        print(f"{T:>6} {scan_rounds(T):>6}" + "".join(f"{1e3 * r[n]:>12.2f}" for n in FORMS)
              + f"   {min(r, key=r.get)}")


if __name__ == "__main__":
    main()
