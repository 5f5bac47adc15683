"""rnncourse.guard: each target is blocked inside the block, restored after it
(also when the code inside raised), and blocks nest."""
import pytest
import torch

import rnncourse
from rnncourse import guard
from rnncourse.guard import (
    AUTOGRAD, FROM_SCRATCH, RECURRENT_KERNELS, REFERENCE_MODELS, TORCH_CLIPPING, BlockedError,
    blocked, constructors, fused_kernels_blocked, recurrent_module_classes,
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
    "autograd": (AUTOGRAD, _autograd, "autograd (Tensor.backward) was called"),
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
        _reference()
        _clip()
        _module()
    with blocked("ex", [TORCH_CLIPPING]):
        _autograd()


def test_default_is_references_and_kernels():
    assert FROM_SCRATCH == (REFERENCE_MODELS, RECURRENT_KERNELS)
    with blocked("rnn_step"):
        with pytest.raises(BlockedError, match="while checking your 'rnn_step'"):
            _reference()
        with pytest.raises(BlockedError):
            torch.nn.RNN(3, 4)(torch.randn(2, 5, 3))
        _autograd()


def test_nested_blocks():
    with blocked("outer", [REFERENCE_MODELS, AUTOGRAD]):
        with blocked("inner", [REFERENCE_MODELS, TORCH_CLIPPING]):
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
