"""Seeded cases, declared by a :class:`Plan`.

A check says once what its cases are (the sizes it draws, how it draws the
arguments, the seeds, whether the inputs are floats or integers) and
:func:`build_cases` makes them. A case is frozen: what a check needs beyond the
learner's arguments (the inputs that produced a tensor, the shape of the index
tensor, ...) is declared in ``Drawn.context`` when the case is drawn, never set
on it afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import torch

CPU = torch.device("cpu")


@dataclass(frozen=True)
class Parameters:
    """An argument that is a list of parameters with gradients (float64 CPU values
    and grads; a grad may be None). Placed as ``torch.nn.Parameter``s on the
    case's device and dtype; the learner gets them as a list, or as a one-shot
    generator (as ``model.parameters()`` is) when ``one_shot``."""
    values: tuple
    grads: tuple
    one_shot: bool = False


@dataclass(frozen=True)
class Placed:
    """Parameters placed for a case: ``params`` is what the check reads back."""
    params: tuple
    one_shot: bool

    def for_learner(self):
        return (p for p in self.params) if self.one_shot else list(self.params)


@dataclass(frozen=True)
class Drawn:
    """What a plan's ``build`` draws for one case.

    ``args``: the learner's arguments in call order (float64 CPU tensors, ints,
    :class:`Parameters`); ``sizes``: sizes to add to (or correct in) the drawn
    ones, for messages; ``context``: what the check needs and the learner never
    sees; ``title``: a label replacing the sizes in messages.
    """
    args: Mapping[Any, Any]
    sizes: Mapping[str, Any] = field(default_factory=dict)
    context: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""


@dataclass(frozen=True)
class Plan:
    """How an exercise's cases are drawn.

    Each seed gets its own ``torch.Generator``; :func:`distinct_sizes` draws one
    size per letter of ``names`` in ``[low, high)``, then ``build(gen, sizes)``
    (``build(gen, sizes, variant)`` when ``variants`` is given: case i gets
    ``variants[i % len(variants)]``) returns a :class:`Drawn` or a list of them.

    Float inputs (``integer=False``): the visible cases are float32, one per
    visible seed, plus one float64 case so that a learner whose code drops to
    float32 hears it before grading; the hidden cases are float64. Integer
    inputs: int64, one case per seed. The hidden plan adds a GPU case when
    there is one (``gpu``). ``fixed`` are visible cases drawn by hand (a fact
    the lesson quotes), run first.

    Three declarations close blind spots, visible and hidden alike:

    * ``ones``: the letters of ``names`` set to 1 in one more case, drawn last
      (e.g. ``"BT"``: a batch of one sequence of one step), where the exercise
      allows them, so that ``.squeeze()`` and friends are caught;
    * ``meta``: the first drawn case is also run on torch's meta device (see
      :mod:`.devices`), so a tensor made without ``device=`` fails on a grader
      without a GPU. Leave it off only where the exercise has no tensors;
    * ``gradient``: ``gradient(args) -> the result's tensors`` (args: float64 CPU
      tensors that require grad, by name) makes the first drawn case also a
      gradient case (see :mod:`.gradients`): a random cotangent is
      back-propagated through the learner's result and the reference's.
    """
    names: str
    build: Callable[..., Drawn | Sequence[Drawn]]
    visible_seeds: Sequence[int] = (0,)
    hidden_seeds: Sequence[int] = (10, 11, 12)
    integer: bool = False
    low: int = 2
    high: int = 9
    variants: Sequence[Any] = ()
    fixed: Sequence[Drawn] = ()
    gpu: bool = True
    ones: str = ""
    meta: bool = False
    gradient: Callable[[dict], Any] | None = None

    def schedule(self, hidden: bool) -> list:
        """The (seed, dtype, device) triples of the visible or hidden cases."""
        if hidden:
            dtype = torch.int64 if self.integer else torch.float64
            plan = [(s, dtype, CPU) for s in self.hidden_seeds]
            if self.gpu and torch.cuda.is_available():
                plan.append((self.hidden_seeds[-1] + 1, dtype, torch.device("cuda")))
            return plan
        if self.integer:
            return [(s, torch.int64, CPU) for s in self.visible_seeds]
        plan = [(s, torch.float32, CPU) for s in self.visible_seeds]
        plan.append((self.visible_seeds[-1] + 1, torch.float64, CPU))
        return plan


@dataclass(frozen=True)
class Case:
    """One set of seeded inputs, placed on its device in its dtype."""
    index: int
    total: int
    seed: int
    dtype: torch.dtype
    device: torch.device
    sizes: Mapping[str, Any]
    args: Mapping[Any, Any]
    context: Mapping[str, Any] = field(default_factory=dict)
    title: str = ""
    meta: bool = False                           # also run on the meta device (see .devices)
    gradient: Callable[[dict], Any] | None = None  # also a gradient case (see .gradients)

    @property
    def label(self) -> str:
        dtype = str(self.dtype).replace("torch.", "")
        head = f"case {self.index + 1} of {self.total}"
        if self.title:
            return f"{head}: {self.title}"
        sizes = ", ".join(f"{k}={v}" for k, v in self.sizes.items())
        return f"{head} (seed {self.seed}, {dtype} on {self.device.type}; {sizes})"


def distinct_sizes(gen: torch.Generator, names: str, low: int = 2, high: int = 9) -> dict:
    """Pairwise-different sizes, one per letter of ``names`` (e.g. "BTIH"), so
    that a transposed weight or a swapped axis shows up as a wrong shape or a
    wrong value instead of passing by accident."""
    if not names:  # a plan whose build draws its own sizes: leave the generator as it is
        return {}
    if high - low < len(names):
        raise ValueError("range too small for pairwise-different sizes")
    pool = torch.randperm(high - low, generator=gen) + low
    return {n: int(pool[i]) for i, n in enumerate(names)}


def randn(gen: torch.Generator, *shape: int, scale: float = 1.0) -> torch.Tensor:
    """Standard-normal values drawn in float64 on the CPU, so float32 and float64
    cases with the same seed hold the same numbers (up to rounding)."""
    return torch.randn(*shape, generator=gen, dtype=torch.float64) * scale


def _place(value, dtype: torch.dtype, device: torch.device):
    if isinstance(value, torch.Tensor):
        # floats take the case's float dtype; integer and bool tensors (tokens,
        # lengths, masks) keep theirs, and so do floats in an integer-input case
        if value.is_floating_point() and dtype.is_floating_point:
            value = value.to(dtype)
        return value.to(device)
    if isinstance(value, Parameters):
        params = []
        for v, g in zip(value.values, value.grads):
            p = torch.nn.Parameter(v.to(device=device, dtype=dtype))
            if g is not None:
                p.grad = g.to(device=device, dtype=dtype)
            params.append(p)
        return Placed(tuple(params), value.one_shot)
    return value


def make_case(index: int, total: int, seed: int, dtype: torch.dtype, device: torch.device,
              sizes: Mapping, args: Mapping, context: Mapping | None = None, title: str = "",
              meta: bool = False, gradient: Callable | None = None) -> Case:
    """A case with the tensors of ``args`` on its device, floating ones in its
    dtype when that is a float dtype (integer and bool ones keep theirs);
    parameters placed as such; other arguments pass through."""
    placed = {name: _place(v, dtype, device) for name, v in args.items()}
    return Case(index, total, seed, dtype, device, dict(sizes), placed, dict(context or {}), title,
                meta, gradient)


def build_cases(hidden: bool, plan: Plan) -> list:
    """The cases of ``plan``: its fixed ones (visible only), then the drawn ones,
    then the one with sizes of 1 (``plan.ones``). The first drawn case carries
    the plan's ``meta`` and ``gradient`` declarations."""
    drawn = []  # (seed, dtype, device, sizes, Drawn, first drawn)
    if not hidden:
        dtype = torch.int64 if plan.integer else torch.float32
        drawn += [(0, dtype, CPU, {}, d, False) for d in plan.fixed]
    schedule = [(seed, dtype, device, {}) for seed, dtype, device in plan.schedule(hidden)]
    if plan.ones:
        seed, dtype, _ = plan.schedule(hidden)[0]
        schedule.append((seed + 100, dtype, CPU, {n: 1 for n in plan.ones}))
    for i, (seed, dtype, device, ones) in enumerate(schedule):
        gen = torch.Generator().manual_seed(seed)
        sizes = {**distinct_sizes(gen, plan.names, plan.low, plan.high), **ones}
        if plan.variants:
            out = plan.build(gen, sizes, plan.variants[i % len(plan.variants)])
        else:
            out = plan.build(gen, sizes)
        for j, d in enumerate([out] if isinstance(out, Drawn) else out):
            drawn.append((seed, dtype, device, sizes, d, i == 0 and j == 0))
    # sizes in labels: the plan's letters (a plan that draws its own reports them in d.sizes)
    return [make_case(i, len(drawn), seed, dtype, device,
                      {**{k: v for k, v in sizes.items() if k in plan.names}, **d.sizes}, d.args, d.context, d.title,
                      meta=first and plan.meta, gradient=plan.gradient if first else None)
            for i, (seed, dtype, device, sizes, d, first) in enumerate(drawn)]


def on_cpu64(case: Case) -> dict:
    """The case's tensor arguments as float64 (floating) or integer CPU tensors,
    for computing references; parameters as their values."""
    def cpu(v):
        if isinstance(v, torch.Tensor):
            return v.detach().to("cpu", torch.float64) if v.is_floating_point() else v.cpu()
        return v
    return {k: cpu(v) for k, v in case.args.items()}
