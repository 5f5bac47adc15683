"""Forward+backward time of each reference model against its torch.nn namesake.

    .venv/bin/python benchmarks/bench_models.py            # all models, all sizes
    .venv/bin/python benchmarks/bench_models.py --models LSTM --reps 20
    .venv/bin/python benchmarks/bench_models.py --batch-first   # (B, T, I) input

Runs on the GPU when one is present (no edit needed); on the CPU it uses 2
threads (the course's target laptop) unless --threads says otherwise. Each
timing is the median of --reps runs after warm-up; the two models alternate
run by run so that any background load hits both alike.

On a CPU, torch.nn.LSTM runs oneDNN's fused LSTM kernel (torch.nn.RNN and GRU
do not), while the reference LSTM's matrix products go through torch's BLAS
(MKL): where that BLAS is slower than oneDNN for these shapes (on 2 threads of
an AMD EPYC, MKL ran these products at ~160-190 GFLOP/s, while torch.nn.LSTM's
whole forward+backward ran at an effective ~210-230), the products alone bound
the LSTM's ratio from below (benchmarks/bench_lstm_floor.py measures that floor).
Profile with torch.profiler to see which side a change moves.

Sizes are (batch B, seq_len T, input I, hidden H); the input is time-major
(T, B, I), torch.nn's default, unless --batch-first. The T=512 size catches the
classic pitfall of indexing x[t] inside the loop, whose backward costs O(T^2).
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import rnncourse

SIZES = [(32, 50, 64, 128), (64, 100, 128, 256), (32, 512, 256, 256)]
MODELS = ["RNN", "LSTM", "GRU"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def fwd_bwd(model: nn.Module, x: torch.Tensor) -> None:
    out, _ = model(x)
    out.sum().backward()


def time_pair(ref: nn.Module, tnn: nn.Module, x: torch.Tensor, reps: int, device) -> tuple:
    for _ in range(2):  # warm-up: allocator, caches, lazy init
        fwd_bwd(ref, x)
        fwd_bwd(tnn, x)
    t_ref, t_tnn = [], []
    for _ in range(reps):
        for model, acc in ((ref, t_ref), (tnn, t_tnn)):
            model.zero_grad(set_to_none=True)
            sync(device)
            t0 = time.perf_counter()
            fwd_bwd(model, x)
            sync(device)
            acc.append(time.perf_counter() - t0)
    return statistics.median(t_ref), statistics.median(t_tnn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="+", default=MODELS, choices=MODELS)
    ap.add_argument("--reps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch-first", action="store_true", help="(B, T, I) input instead of (T, B, I)")
    args = ap.parse_args()

    device = rnncourse.get_device()
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    where = f"{device}" + (f", {torch.get_num_threads()} threads" if device.type == "cpu" else
                           f" ({torch.cuda.get_device_name()})" if device.type == "cuda" else "")
    layout = "(B, T, I)" if args.batch_first else "(T, B, I)"
    print(f"torch {torch.__version__}, {where}, float32, {layout} input, "
          f"median of {args.reps}, forward+backward")
    print(f"{'model':5} {'(B, T, I, H)':>20} {'rnncourse ms':>13} {'torch.nn ms':>12} {'ratio':>6}")
    for name in args.models:
        for B, T, I, H in SIZES:
            torch.manual_seed(0)
            tnn = getattr(nn, name)(I, H, batch_first=args.batch_first).to(device)
            ref = getattr(rnncourse, name)(I, H, batch_first=args.batch_first).to(device)
            ref.load_state_dict(tnn.state_dict())
            shape = (B, T, I) if args.batch_first else (T, B, I)
            x = torch.randn(*shape, device=device, requires_grad=True)
            t_ref, t_tnn = time_pair(ref, tnn, x, args.reps, device)
            print(f"{name:5} {str((B, T, I, H)):>20} {1e3 * t_ref:13.2f} {1e3 * t_tnn:12.2f} "
                  f"{t_ref / t_tnn:6.2f}", flush=True)


if __name__ == "__main__":
    main()
