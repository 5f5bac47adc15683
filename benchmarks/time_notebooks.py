"""Wall time of each solution notebook, run top to bottom in a fresh kernel.

    .venv/bin/python benchmarks/time_notebooks.py              # every lesson, normal and fast mode
    .venv/bin/python benchmarks/time_notebooks.py 03_vanishing_exploding --modes normal

"normal" is what a learner gets; "fast" sets RNNCOURSE_FAST=1, as the test suite
does (nbgrader's NBGRADER_EXECUTION has the same effect while grading). The
notebooks run one after another, never in parallel: two busy processes on a
2-core machine slow 2-thread torch several times over. The time includes the
kernel's start and torch's import (about 2 s here).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def lessons() -> list:
    return sorted(d.name for d in (ROOT / "solutions").iterdir()
                  if (d / f"{d.name}.ipynb").is_file())


def run(name: str, fast: bool) -> float:
    nb = nbformat.read(ROOT / "solutions" / name / f"{name}.ipynb", as_version=4)
    saved = os.environ.pop("RNNCOURSE_FAST", None)
    if fast:
        os.environ["RNNCOURSE_FAST"] = "1"
    try:
        t0 = time.perf_counter()
        NotebookClient(nb, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(ROOT / "solutions" / name)}}).execute()
        return time.perf_counter() - t0
    finally:
        os.environ.pop("RNNCOURSE_FAST", None)
        if saved is not None:
            os.environ["RNNCOURSE_FAST"] = saved


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("names", nargs="*", help="lessons (default: all in solutions/)")
    ap.add_argument("--modes", nargs="+", default=["normal", "fast"], choices=["normal", "fast"])
    args = ap.parse_args()
    names = args.names or lessons()
    print(f"{'lesson':26}" + "".join(f"{m + ' s':>10}" for m in args.modes), flush=True)
    for name in names:
        times = [run(name, fast=(m == "fast")) for m in args.modes]
        print(f"{name:26}" + "".join(f"{t:10.1f}" for t in times), flush=True)


if __name__ == "__main__":
    main()
