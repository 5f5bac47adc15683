"""How fast the reference LSTM could be on this CPU: the matrix products alone.

    .venv/bin/python benchmarks/bench_lstm_floor.py

Any LSTM written in torch tensor ops does at least these products per forward and
backward: the input projection (one GEMM), T recurrent products (B, H) @ (H, 4H),
T products back to h_{t-1} (B, 4H) @ (4H, H), and three GEMMs for dW_hh, dW_ih and
dx. They run on torch's BLAS (MKL on x86). torch.nn.LSTM on a CPU runs oneDNN's
fused LSTM instead. The ratio printed is a floor for benchmarks/bench_models.py's
LSTM ratio at the same sizes (2 threads, median of 20); the elementwise gate work
comes on top of it.
"""
from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from bench_models import SIZES


def median_ms(fn, reps: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    print(f"torch {torch.__version__}, 2 threads, float32")
    print(f"{'(B, T, I, H)':>20}  {'products ms':>11}  {'nn.LSTM ms':>10}  floor")
    for B, T, I, H in SIZES:
        x, w_ih, w_hh = torch.randn(T * B, I), torch.randn(4 * H, I), torch.randn(4 * H, H)
        h, gates = torch.randn(B, H), torch.randn(B, 4 * H)
        all_gates, all_h = torch.randn(T * B, 4 * H), torch.randn(T * B, H)
        out, dh = torch.empty(B, 4 * H), torch.empty(B, H)

        def products():
            torch.mm(x, w_ih.t())  # input projection, all steps at once
            for _ in range(T):
                torch.addmm(gates, h, w_hh.t(), out=out)  # the recurrence
            for _ in range(T):
                torch.mm(gates, w_hh, out=dh)  # back to h_{t-1}
            torch.mm(all_gates.t(), all_h), torch.mm(all_gates.t(), x), torch.mm(all_gates, w_ih)

        lstm, xs = nn.LSTM(I, H), torch.randn(T, B, I, requires_grad=True)

        def fused():
            lstm(xs)[0].sum().backward()

        a, b = median_ms(products), median_ms(fused)
        print(f"{str((B, T, I, H)):>20}  {a:>11.2f}  {b:>10.2f}  {a / b:.2f}x")


if __name__ == "__main__":
    main()
