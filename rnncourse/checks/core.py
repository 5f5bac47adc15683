"""The machinery every check shares, in one import.

A check in ``rnncourse.checks.<lesson>`` is written as::

    PLAN = Plan("BIH", _step_args)                           # declared once: sizes, draws, seeds
    for case in build_cases(hidden, PLAN):                   # frozen, seeded cases
        out = call_learner(fn, case, "rnn_step")             # blocked, warnings captured
        validate(out, case, "rnn_step", "h_t", ("B", "H"))   # one validator per kind of output
        compare(out, reference, case, "rnn_step", "h_t", variants={...})

and on any failure raises :class:`CheckFailed`, whose message names the case,
says what was expected and what came back, and, where a known wrong variant of
the computation reproduces the learner's output, names the likely mistake. The
expected values themselves are never printed: the point is to teach, not to
leak the answer.

The jobs live in these modules: :mod:`.cases` (plans and cases),
:mod:`.calling` (calling the learner, :class:`CheckFailed`), :mod:`.compare`
(validators, comparisons, the tolerance table), :mod:`.devices` (the meta-device
run a plan declares with ``meta=True``), :mod:`.gradients` (the gradient run a
plan declares with ``gradient=reference``). Every learner call blocks the
package's answer-computing code, its models and torch's recurrent kernels
(``rnncourse.guard.FROM_SCRATCH``) whatever the check passes as ``blocks``.
"""
from rnncourse.checks.calling import (
    CheckFailed, call_learner, helper_first, helper_problem, learner_blocks, on_shape_error, passed,
)
from rnncourse.checks.cases import (
    Case, Drawn, Parameters, Placed, Plan, build_cases, distinct_sizes, make_case, on_cpu64, randn,
)
from rnncourse.checks.compare import (
    TOLERANCE, close, compare, compare_exact, compare_scalar, shape_text, tolerance, validate,
    validate_int, validate_items, validate_mask, validate_scalar,
)

__all__ = [
    "Case", "CheckFailed", "Drawn", "Parameters", "Placed", "Plan", "TOLERANCE", "build_cases",
    "call_learner", "close", "helper_first", "helper_problem", "learner_blocks", "on_shape_error", "compare", "compare_exact", "compare_scalar", "distinct_sizes",
    "make_case", "on_cpu64", "passed", "randn", "shape_text", "tolerance", "validate",
    "validate_int", "validate_items", "validate_mask", "validate_scalar",
]
