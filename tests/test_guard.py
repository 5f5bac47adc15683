"""rnncourse.guard: each target is blocked inside the block, restored after it
(also when the code inside raised), and blocks nest."""
import pytest
import torch

import rnncourse
from rnncourse import guard
from rnncourse.guard import (
    ANSWER_CODE, AUTOGRAD, FROM_SCRATCH, RECURRENT_KERNELS, REFERENCE_MODELS, TORCH_CLIPPING,
    BlockedError, blocked, constructors, fused_kernels_blocked, handed_to_learner,
    recurrent_module_classes,
)

MODULES = constructors("recurrent modules", recurrent_module_classes,
                       lambda cls: f"built a {cls.__name__} {{why}}")


def _reference():
    return rnncourse.RNNCell(3, 4)(torch.randn(2, 3))


def _kernel():
    return torch.rnn_tanh_cell(torch.randn(2, 3), torch.randn(2, 4), torch.randn(4, 3), torch.randn(4, 4))


def _autograd():
    x = torch.ones(2, requires_grad=True)
    (x * 3).sum().backward()
    return x.grad


def _clip():
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    return torch.nn.utils.clip_grad_norm_([p], 1.0)


def _module():
    return torch.nn.LSTM(3, 4)


# target, something that uses it, a phrase of the refusal
TARGETS = {
    "reference models": (REFERENCE_MODELS, _reference, "rnncourse.RNNCell was called"),
    "recurrent kernels": (RECURRENT_KERNELS, _kernel, "fused recurrent kernel 'rnn_tanh_cell'"),
    "autograd": (AUTOGRAD, _autograd, "autograd was switched on"),
    "torch's clipping": (TORCH_CLIPPING, _clip, "torch.nn.utils.clip_grad_norm_ was called"),
    "a module constructor": (MODULES, _module, "built a LSTM while checking your 'ex'"),
}


@pytest.mark.parametrize("name", list(TARGETS))
def test_blocked_while_inside_and_restored_after(name):
    target, use, phrase = TARGETS[name]
    use()  # works before
    with blocked("ex", [target]):
        with pytest.raises(BlockedError) as info:
            use()
        assert phrase in str(info.value)
    use()  # and after


@pytest.mark.parametrize("name", list(TARGETS))
def test_restored_when_the_code_inside_raises(name):
    target, use, _ = TARGETS[name]
    with pytest.raises(ZeroDivisionError):
        with blocked("ex", [target]):
            1 / 0
    use()
    with pytest.raises(BlockedError):  # a refusal escaping the block restores too
        with blocked("ex", [target]):
            use()
    use()


def test_only_the_named_targets_are_blocked():
    with blocked("ex", [AUTOGRAD]):
        torch.tanh(torch.randn(2, 3) @ torch.randn(3, 4))  # no tensor requires grad: no autograd
        _kernel()
    with blocked("ex", [RECURRENT_KERNELS]):
        _clip()
    with blocked("ex", [TORCH_CLIPPING]):
        _autograd()


def test_default_is_references_kernels_and_the_answer_code():
    assert FROM_SCRATCH == (REFERENCE_MODELS, RECURRENT_KERNELS, ANSWER_CODE)
    with blocked("rnn_step"):
        with pytest.raises(BlockedError, match="while checking your 'rnn_step'"):
            _reference()
        with pytest.raises(BlockedError):
            torch.nn.RNN(3, 4)(torch.randn(2, 5, 3))
        _autograd()


def test_nested_blocks():
    with blocked("outer", [REFERENCE_MODELS, AUTOGRAD]):
        with blocked("inner", [REFERENCE_MODELS, TORCH_CLIPPING, ANSWER_CODE]):
            with pytest.raises(BlockedError, match="'inner'"):
                _reference()
            with pytest.raises(BlockedError):
                _clip()
            with pytest.raises(BlockedError):
                _autograd()
        # the inner block's end leaves the outer one in force, with its own reason
        with pytest.raises(BlockedError, match="'outer'"):
            _reference()
        with pytest.raises(BlockedError):
            _autograd()
        _functional_step()  # the inner block's answer-code rule has ended
        with pytest.raises(BlockedError, match="autograd"):  # the outer's autograd ban, not clipping
            _clip()
    _clip()
    _reference()
    _autograd()
    assert guard._reference_block == []


def test_same_target_nested_twice():
    with blocked("a", [TORCH_CLIPPING, MODULES]):
        with blocked("b", [TORCH_CLIPPING, MODULES]):
            with pytest.raises(BlockedError):
                _clip()
        with pytest.raises(BlockedError):
            _module()
    _clip()
    _module()


def test_clipping_imported_before_the_block_is_still_caught():
    from torch.nn.utils import clip_grad_norm_ as early
    p = torch.nn.Parameter(torch.zeros(2))
    p.grad = torch.tensor([3.0, 4.0])
    with blocked("ex", [TORCH_CLIPPING]):
        with pytest.raises(BlockedError):
            early([p], 1.0)
    assert float(early([p], 1.0)) == 5.0


def test_constructor_of_an_inherited_init_is_restored_exactly():
    class Base:
        def __init__(self):
            self.ok = True

    class Child(Base):
        pass

    target = constructors("child", lambda: [Child], lambda cls: "no")
    with blocked("ex", [target]):
        with pytest.raises(BlockedError):
            Child()
    assert "__init__" not in Child.__dict__ and Child().ok


def test_fused_kernels_blocked_keeps_its_signature():
    with fused_kernels_blocked():
        with pytest.raises(BlockedError, match="inside a block that forbids it"):
            _kernel()
        _reference()  # the models themselves are plain tensor ops
    _kernel()


# ---------------------------------------------------------------- every route, refused with a reason

def _functional_step():
    from rnncourse import functional
    return functional.rnn_step(torch.randn(2, 4), torch.randn(2, 4), torch.randn(4, 4))


def _checks_variant():
    from rnncourse.checks.gru import gru_variant  # what lesson 05's first cell once imported
    x, h = torch.randn(2, 3), torch.randn(2, 4)
    return gru_variant(x, h, torch.randn(12, 3), torch.randn(12, 4), torch.randn(12), torch.randn(12))


def _checks_reference():
    from rnncourse.checks.rnn import reference_forward
    return reference_forward(torch.randn(2, 3, 3), torch.randn(2, 4), torch.randn(4, 3),
                             torch.randn(4, 4), torch.randn(4), torch.randn(4))


def _data_helper():
    from rnncourse.data.stream import batchify
    return batchify(torch.arange(10), 2)


def _model():
    return rnncourse.LSTM(3, 4)(torch.randn(2, 5, 3))


ANSWER_ROUTES = {
    "a functional step": (_functional_step, "rnn_step (rnncourse/functional.py) was called"),
    "a check's variant helper": (_checks_variant, "gru_variant (rnncourse/checks/gru.py) was called"),
    "a check's reference helper": (_checks_reference, "reference_forward (rnncourse/checks/rnn.py)"),
    "a data helper": (_data_helper, "batchify (rnncourse/data/stream.py)"),
    "a reference model": (_model, "rnncourse.LSTM"),
}


@pytest.mark.parametrize("route", list(ANSWER_ROUTES))
def test_the_package_code_that_computes_answers_is_refused(route):
    use, phrase = ANSWER_ROUTES[route]
    use()  # imported (into the namespace) before the check, as a notebook cell would
    with blocked("ex") as refusals:
        with pytest.raises(BlockedError) as info:
            use()
    assert phrase in str(info.value) and "switched off while" in str(info.value), str(info.value)
    assert refusals  # recorded, so a learner who catches it still fails
    use()  # and back afterwards


def test_infrastructure_stays_reachable():
    from rnncourse.checks.cases import Placed
    placed = Placed((torch.nn.Parameter(torch.zeros(2)),), one_shot=True)
    with blocked("ex") as refusals:
        assert len(list(placed.for_learner())) == 1  # its generator runs in the learner's loop
        rnncourse.get_device()
    assert not refusals


def test_a_function_handed_to_the_learner_runs_unblocked():
    score = handed_to_learner(lambda x: rnncourse.functional.rnn_step(x, x, torch.eye(4)))
    with blocked("ex", [*FROM_SCRATCH, AUTOGRAD]) as refusals:
        score(torch.randn(2, 4))
        with pytest.raises(BlockedError):  # and blocked again once it returned
            _functional_step()
    assert len(refusals) == 1


def _x():
    return torch.randn(3, dtype=torch.float64)


AUTOGRAD_ROUTES = {
    "Tensor.backward": lambda: _x().requires_grad_().sum().backward(),
    "torch.autograd.grad of a graph built before": lambda: _graph_built_before("grad"),
    "Tensor.backward of a graph built before": lambda: _graph_built_before("backward"),
    "torch.autograd.backward of a graph built before": lambda: _graph_built_before("autograd.backward"),
    "a grad_fn node called by hand": lambda: _graph_built_before("grad_fn"),
    "requires_grad=True": lambda: torch.ones(2, requires_grad=True),
    "requires_grad setter": lambda: setattr(_x(), "requires_grad", True),
    "a Parameter": lambda: torch.nn.Parameter(_x()) * 2,
    "torch.func.grad": lambda: torch.func.grad(lambda x: x.sin().sum())(_x()),
    "torch.func.vjp": lambda: torch.func.vjp(torch.sin, _x()),
    "torch.func.jvp": lambda: torch.func.jvp(torch.sin, (_x(),), (_x(),)),
    "torch.func.jacrev": lambda: torch.func.jacrev(torch.sin)(_x()),
    "torch.func.jacfwd": lambda: torch.func.jacfwd(torch.sin)(_x()),
    "torch.func.hessian": lambda: torch.func.hessian(lambda x: x.sin().sum())(_x()),
    "torch.func.linearize": lambda: torch.func.linearize(torch.sin, _x()),
    "torch.autograd.functional.jacobian": lambda: torch.autograd.functional.jacobian(torch.sin, _x()),
    "torch.autograd.functional.vjp": lambda: torch.autograd.functional.vjp(torch.sin, _x(), _x()),
    "forward-mode AD": lambda: _dual(),
}


_BEFORE = {}


def _graph_built_before(how):
    """The route on a graph built outside the block (the first call builds it)."""
    if how not in _BEFORE:
        x = _x().requires_grad_()
        _BEFORE[how] = (x, x.sin().sum())
        return None
    x, y = _BEFORE.pop(how)
    if how == "grad":
        return torch.autograd.grad(y, x)
    if how == "backward":
        return y.backward()
    if how == "grad_fn":
        return y.grad_fn(torch.ones(()))
    return torch.autograd.backward(y)


def _dual():
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        return fwAD.unpack_dual(fwAD.make_dual(_x(), _x()).sin()).tangent


@pytest.mark.parametrize("route", list(AUTOGRAD_ROUTES))
def test_every_automatic_differentiation_route_is_refused(route):
    from torch.func import grad, jacrev  # noqa: F401  imported before the check, as a notebook would
    use = AUTOGRAD_ROUTES[route]
    use()
    with blocked("rnn_backward", [*FROM_SCRATCH, AUTOGRAD]) as refusals:
        with pytest.raises(BlockedError) as info:
            use()
    assert "autograd" in str(info.value) and "derive the gradients by hand" in str(info.value)
    assert refusals
    use()


def test_autograd_stays_on_where_the_exercise_does_not_forbid_it():
    with blocked("rnn_step") as refusals:
        _autograd()
        torch.func.grad(lambda x: x.sin().sum())(_x())
    assert not refusals


def test_a_refusal_caught_by_the_code_inside_is_still_recorded():
    def sneaky():
        try:
            return _checks_variant()
        except Exception:
            return _checks_variant()  # the hook is gone after a refusal; the record is not
    with blocked("ex") as refusals:
        sneaky()
    assert refusals and "gru_variant" in refusals[0]


def test_a_profiler_set_before_is_put_back():
    import sys
    def mine(frame, event, arg):
        return None
    sys.setprofile(mine)
    try:
        with blocked("ex"):
            pass
        assert sys.getprofile() is mine
    finally:
        sys.setprofile(None)


def test_an_exercise_built_on_a_package_module_may_call_it():
    from rnncourse.checks.calling import learner_blocks
    from rnncourse.data import recall
    blocks = learner_blocks(allow=("rnncourse.data.recall",))
    assert ANSWER_CODE not in blocks and len(blocks) == len(FROM_SCRATCH)
    with blocked("ex", blocks) as refusals:
        recall.recall_batch(2, 5)  # allowed, with whatever it calls
        with pytest.raises(BlockedError):  # the rest of the package stays off
            _functional_step()
    assert len(refusals) == 1
    with blocked("ex", learner_blocks(allow=("rnncourse.functional.rnn_step",))) as refusals:
        _functional_step()
        with pytest.raises(BlockedError):
            _data_helper()
    assert len(refusals) == 1
    with blocked("ex", learner_blocks(allow=(RECURRENT_KERNELS,))) as refusals:
        _kernel()
    assert not refusals


def test_switching_the_hook_off_is_caught():
    import sys

    def sneaky():
        sys.setprofile(None)
        return _checks_variant()
    with blocked("ex") as refusals:
        sneaky()
    assert refusals and "sys.setprofile" in refusals[0]
