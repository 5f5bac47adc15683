"""Training throughput of lesson 08's character LSTM, in characters per second:
the course's reference LSTM (what the lesson trains) against torch.nn.LSTM, on
the same batch shape, one truncated-BPTT training step (forward, mean
cross-entropy, backward, clipping, Adam step, detach) per timing.

    .venv/bin/python benchmarks/bench_language_model.py
    .venv/bin/python benchmarks/bench_language_model.py --threads 1 --reps 30

Runs on the GPU when one is present; on the CPU it uses 2 threads unless
--threads says otherwise. Each figure is the median of --reps steps after a
warm-up; the two models alternate step by step, so background load hits both
alike. Print `uptime`'s load average next to any figure you quote.

Shapes are (B, T, embedding E, hidden H, vocabulary V): the lesson's live run
(32, 32, 32, 64, 9) and the saved prose model (32, 32, 32, 256, 94).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from rnncourse.data.stream import detach_state
from rnncourse.experiments.language_model import CharLM

SHAPES = [(32, 32, 32, 64, 9), (32, 32, 32, 256, 94)]


def step_time(model, opt, x, y, state, device):
    """Seconds of one training step; returns (seconds, new state)."""
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    logits, state = model(x, state)  # (B, T, V)
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    state = detach_state(state)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start, state


def bench(shape, reps: int, device: torch.device) -> dict:
    B, T, E, H, V = shape
    gen = torch.Generator().manual_seed(0)
    x = torch.randint(0, V, (B, T), generator=gen).to(device)
    y = torch.randint(0, V, (B, T), generator=gen).to(device)
    runs = {}
    for impl in ("rnncourse", "torch"):
        torch.manual_seed(0)
        model = CharLM("LSTM", V, E, H, impl=impl).to(device)
        runs[impl] = [model, torch.optim.Adam(model.parameters(), lr=1e-3), None, []]
    for i in range(reps + 2):  # two warm-up steps each
        for impl, run in runs.items():
            seconds, run[2] = step_time(run[0], run[1], x, y, run[2], device)
            if i >= 2:
                run[3].append(seconds)
    return {impl: B * T / statistics.median(run[3]) for impl, run in runs.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reps", type=int, default=20)
    args = parser.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"device {device}, threads {torch.get_num_threads()}, load average {load:.2f}, "
          f"median of {args.reps} steps")
    print(f"{'B, T, E, H, V':<22} {'rnncourse.LSTM':>16} {'torch.nn.LSTM':>16} {'ratio':>7}   (characters per second)")
    for shape in SHAPES:
        r = bench(shape, args.reps, device)
        print(f"{str(shape):<22} {r['rnncourse']:>16,.0f} {r['torch']:>16,.0f} {r['torch'] / r['rnncourse']:>7.2f}")


if __name__ == "__main__":
    main()
