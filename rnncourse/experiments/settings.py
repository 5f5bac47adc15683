"""What every experiment shares: a frozen settings dataclass that saves as a plain
dict, a scoped torch thread count, the command line every experiment starts from,
and reading saved results.

Each experiment module defines ``<Name>Settings(Settings)``, a module constant
``SETTINGS`` with the values its saved runs were trained with, and the same two
functions::

    build_model(kind, settings=SETTINGS, seed=None) -> torch.nn.Module
    train(kind, settings=SETTINGS, *, T=None, steps=None, seed=None, device=None,
          progress=None, threads=None) -> (model, history, seconds)

Saved runs store ``settings.to_dict()``: the same keys and plain values as the
string-keyed dicts they were saved with before the dataclass, so the files in
data/ are unchanged and :meth:`Settings.from_dict` reads them back.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import time
from contextlib import contextmanager
from pathlib import Path

import torch


@dataclasses.dataclass(frozen=True)
class Settings:
    """Base of the experiments' settings; subclasses add the fields."""

    def replace(self, **changes) -> "Settings":
        """A copy with some fields changed: ``SETTINGS.replace(steps=50)``."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """Plain types only (tuples as lists), as saved in data/."""
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_dict(cls, saved: dict) -> "Settings":
        """The settings a saved run records (lists back to tuples); unknown keys are an error."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(saved) - names)
        if unknown:
            raise ValueError(f"{cls.__name__} has no field(s) {unknown}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in saved.items()})


@contextmanager
def torch_threads(threads: int | None):
    """Run the block with ``threads`` torch CPU threads (None: leave as is).

    The course's models are tiny: on a busy 2-core machine two threads waiting
    for each other made a run 20 times slower than one thread (measured for lesson 05).
    """
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def saved_results(path, regenerate: str, name: str = "results.json") -> dict:
    """The JSON an experiment saved as ``path/name``; a missing file says which
    command writes it."""
    file = Path(path) / name
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{regenerate}`")
    return json.loads(file.read_text())


def experiment_parser(doc: str, out: Path, steps: int | None = None) -> argparse.ArgumentParser:
    """The options every experiment's command takes: ``--threads``, ``--out``, and
    ``--steps`` where it trains for a number of steps; an experiment adds its own."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=None,
                        help="torch CPU threads for the whole run (1 is fastest on a busy machine)")
    if steps is not None:
        parser.add_argument("--steps", type=int, default=steps)
    parser.add_argument("--out", type=Path, default=out)
    return parser


@contextmanager
def command_run(args: argparse.Namespace):
    """Around an experiment's run: its thread count for the whole run, then how long it
    took and where it wrote."""
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    yield
    print(f"done in {time.perf_counter() - start:.0f} s; wrote {args.out}")
