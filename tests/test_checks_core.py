"""The shared check machinery: case sizes, and how a failed check looks in a
real Jupyter kernel (short, still an error output, no test source)."""
import sys
from pathlib import Path

import nbformat
import pytest
import torch
from nbclient import NotebookClient

from rnncourse.checks.core import CheckFailed, distinct_sizes, shape_text

ROOT = Path(__file__).resolve().parents[1]


def test_sizes_are_pairwise_different():
    for seed in range(50):
        sizes = distinct_sizes(torch.Generator().manual_seed(seed), "BTIH")
        assert len(set(sizes.values())) == 4


def test_shape_text():
    assert shape_text(("B", "T+1", "H"), {"B": 3, "T": 4, "H": 5}) == "(B, T+1, H) = (3, 5, 5)"


def test_check_failed_renders_as_one_line():
    assert CheckFailed("case 1: wrong")._render_traceback_() == ["\x1b[0;31mCheckFailed\x1b[0m: case 1: wrong"]
    assert isinstance(CheckFailed("x"), AssertionError)


def test_failed_check_in_a_kernel_is_a_short_error_output():
    test_cell = (
        "from rnncourse.checks.rnn import check_rnn_step\n"
        "SECRET_TEST_SOURCE = 1\n"
        "check_rnn_step(rnn_step)\n"
    )
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("import torch\n"
                                  "def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
                                  "    return torch.tanh(x_t @ W_ih.T + h_prev @ W_hh.T)\n"),
        nbformat.v4.new_code_cell(test_cell),
        nbformat.v4.new_code_cell("def rnn_step(x_t, h_prev, W_ih, W_hh, b_ih, b_hh):\n"
                                  "    return torch.tanh(x_t @ W_ih.T + b_ih + h_prev @ W_hh.T + b_hh)\n"),
        nbformat.v4.new_code_cell(test_cell),
    ]
    NotebookClient(nb, timeout=120, allow_errors=True, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    failed, passed = nb.cells[1].outputs, nb.cells[3].outputs
    assert [o["output_type"] for o in failed] == ["error"]  # nbgrader scores this cell 0
    err = failed[0]
    assert err["ename"] == "CheckFailed"
    assert "both biases are left out" in err["evalue"]
    assert len(err["traceback"]) == 1
    assert "SECRET_TEST_SOURCE" not in "".join(err["traceback"])
    assert [o["output_type"] for o in passed] == ["stream"]
    assert passed[0]["name"] == "stdout" and "all 3 visible cases pass" in passed[0]["text"]  # with sizes of 1


# ---------------------------------------------------------------- plans and cases

import dataclasses  # noqa: E402

from rnncourse.checks.core import (  # noqa: E402
    Drawn, Parameters, Placed, Plan, TOLERANCE, build_cases, call_learner, compare_exact,
    compare_scalar, make_case, tolerance, validate_int, validate_items, validate_mask, validate_scalar,
)


def _plan(**kw):
    return Plan("BT", lambda gen, s, *v: Drawn({"x": torch.randn(s["B"], s["T"], generator=gen,
                                                                dtype=torch.float64)},
                                               context={"variant": v[0] if v else None}), **kw)


def test_float_plans_run_float32_then_float64_visible_and_float64_hidden():
    visible = build_cases(False, _plan())
    assert [(c.seed, c.dtype) for c in visible] == [(0, torch.float32), (1, torch.float64)]
    assert visible[0].args["x"].dtype == torch.float32
    hidden = build_cases(True, _plan(gpu=False))
    assert [(c.seed, c.dtype) for c in hidden] == [(10, torch.float64), (11, torch.float64), (12, torch.float64)]
    assert [c.index for c in hidden] == [0, 1, 2] and {c.total for c in hidden} == {3}


def test_integer_plans_keep_integer_tensors():
    plan = Plan("N", lambda gen, s: Drawn({"tokens": torch.randperm(s["N"], generator=gen)}),
                visible_seeds=(0, 1), integer=True)
    cases = build_cases(False, plan)
    assert [c.dtype for c in cases] == [torch.int64, torch.int64]
    assert cases[0].args["tokens"].dtype == torch.int64 and "int64 on cpu" in cases[0].label


def test_mixed_inputs_keep_their_kinds():
    # a padded batch: float inputs, integer lengths, a boolean mask
    plan = Plan("BT", lambda gen, s: Drawn({
        "x": torch.randn(s["B"], s["T"], generator=gen, dtype=torch.float64),
        "lengths": torch.randint(1, s["T"] + 1, (s["B"],), generator=gen),
        "mask": torch.ones(s["B"], s["T"], dtype=torch.bool)}))
    case = build_cases(False, plan)[0]
    assert [case.args[k].dtype for k in ("x", "lengths", "mask")] == [torch.float32, torch.int64, torch.bool]
    tokens = Plan("V", lambda gen, s: Drawn({"ids": torch.arange(3), "weight": torch.ones(3, 2, dtype=torch.float64)}),
                  integer=True)
    case = build_cases(True, tokens)[0]
    assert case.args["ids"].dtype == torch.int64 and case.args["weight"].dtype == torch.float64


def test_variants_are_taken_in_turn_and_fixed_cases_come_first():
    fixed = Drawn({"x": torch.zeros(1, 1, dtype=torch.float64)}, sizes={"x": "zeros"})
    cases = build_cases(False, _plan(variants=("a", "b"), fixed=(fixed,)))
    assert [c.context.get("variant") for c in cases] == [None, "a", "b"]
    assert cases[0].label.startswith("case 1 of 3 (seed 0, float32 on cpu; x=zeros)")
    assert [c.context["variant"] for c in build_cases(True, _plan(variants=("a", "b"), gpu=False))] == ["a", "b", "a"]


def test_cases_are_frozen():
    case = build_cases(False, _plan())[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.dtype = torch.int64
    with pytest.raises(dataclasses.FrozenInstanceError):
        case.inputs = {}


def test_parameters_are_placed_and_handed_over_as_declared():
    values, grads = (torch.zeros(2, dtype=torch.float64),), (torch.ones(2, dtype=torch.float64),)
    case = make_case(0, 1, 0, torch.float32, torch.device("cpu"), {}, {
        "parameters": Parameters(values, grads, one_shot=True)})
    placed = case.args["parameters"]
    assert isinstance(placed, Placed) and placed.params[0].grad.dtype == torch.float32
    seen = call_learner(lambda ps: [type(ps).__name__, sum(1 for _ in ps), sum(1 for _ in ps)], case, "f")
    assert seen == ["generator", 1, 0]  # a one-shot generator, as model.parameters() is


# ---------------------------------------------------------------- validators, one per kind

def _case(dtype=torch.int64, **sizes):
    return make_case(0, 1, 0, dtype, torch.device("cpu"), sizes or {"B": 2, "T": 3}, {})


def test_integer_outputs_are_compared_exactly_with_their_dtype():
    case = _case()
    tokens = torch.arange(6).view(2, 3)
    validate_int(tokens, case, "f", "ids", ("B", "T"))
    with pytest.raises(CheckFailed, match="keep the inputs' dtype"):
        validate_int(tokens.float(), case, "f", "ids", ("B", "T"))
    with pytest.raises(CheckFailed, match=r"expected ids of shape \(B, T\) = \(2, 3\), got \(3, 2\)"):
        validate_int(tokens.T, case, "f", "ids", ("B", "T"))
    with pytest.raises(CheckFailed, match="They match what you get if reversed"):
        compare_exact(tokens.flip(1), tokens, case, "f", "ids", {"reversed": tokens.flip(1)})
    with pytest.raises(CheckFailed, match="1 of 6 entries"):
        compare_exact(tokens + (tokens == 5), tokens, case, "f", "ids")


def test_masks_must_be_boolean():
    case = _case()
    mask = torch.arange(3)[None] < torch.tensor([[1], [3]])
    validate_mask(mask, case, "f", "mask", ("B", "T"))
    with pytest.raises(CheckFailed, match="boolean mask"):
        validate_mask(mask.long(), case, "f", "mask", ("B", "T"))


def test_items_of_a_given_length():
    case = _case()
    assert validate_items((1, 2), case, "f", ("a", "b")) == [1, 2]
    with pytest.raises(CheckFailed, match=r"expected a pair \(a, b\), got a tuple of length 3"):
        validate_items((1, 2, 3), case, "f", ("a", "b"))
    with pytest.raises(CheckFailed, match="got three items"):
        validate_items((1, 2, 3), case, "f", ("a", "b"), by_length={3: "three items."})
    with pytest.raises(CheckFailed, match="got a dict"):
        validate_items({"a": 1, "b": 2}, case, "f", ("a", "b"))


def test_scalars():
    case = _case(torch.float64)
    assert validate_scalar(torch.tensor(2.5), case, "f", "x") == 2.5
    assert validate_scalar(6.0, case, "f", "n", integer=True) == 6
    with pytest.raises(CheckFailed, match="not a whole number"):
        validate_scalar(6.5, case, "f", "n", integer=True)
    with pytest.raises(CheckFailed, match="returned None"):
        validate_scalar(None, case, "f", "x")
    with pytest.raises(CheckFailed, match="should be a number"):
        validate_scalar("6", case, "f", "x")
    compare_scalar(5.0 + 1e-12, 5.0, case, "f", "the norm")
    with pytest.raises(CheckFailed, match="It matches what you get if squared"):
        compare_scalar(25.0, 5.0, case, "f", "the norm", {"squared": 25.0})


def test_one_tolerance_table():
    case = _case(torch.float32)
    assert tolerance(case) == TOLERANCE["tensor"][torch.float32]
    assert tolerance(case, torch.float64) == TOLERANCE["tensor"][torch.float32]  # the less precise
    assert tolerance(_case(torch.float64), kind="scalar") == TOLERANCE["scalar"][torch.float64]
    assert tolerance(_case(torch.int64), torch.float64) == TOLERANCE["tensor"][torch.float64]
