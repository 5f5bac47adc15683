"""The lesson-00 checks accept any correct one_hot / embed and reject typical mistakes."""
import warnings

import pytest
import torch

from rnncourse.checks.core import CheckFailed
from rnncourse.checks.welcome import check_embed, check_one_hot

from _reject import assert_rejected
from classroom.wrong import shared

F = torch.nn.functional


def one_hot_scatter(indices, num_classes):
    out = torch.zeros(*indices.shape, num_classes, device=indices.device)
    return out.scatter(-1, indices.unsqueeze(-1), 1.0)


def one_hot_compare(indices, num_classes):
    # broadcasting comparison against 0..C-1, in float64
    classes = torch.arange(num_classes, device=indices.device)
    return (indices.unsqueeze(-1) == classes).double()


def one_hot_torch(indices, num_classes):
    return F.one_hot(indices, num_classes).float()


def embed_index(indices, weight):
    return weight[indices]


def embed_matmul(indices, weight):
    return one_hot_scatter(indices, weight.shape[0]).to(weight) @ weight


def embed_flat(indices, weight):
    rows = weight.index_select(0, indices.reshape(-1))  # (N, E)
    return rows.reshape(*indices.shape, weight.shape[1])


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [one_hot_scatter, one_hot_compare, one_hot_torch])
def test_one_hot_accepts_correct_code(fn, hidden):
    check_one_hot(fn, hidden=hidden)


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [embed_index, embed_matmul, embed_flat, F.embedding])
def test_embed_accepts_correct_code(fn, hidden):
    check_embed(fn, hidden=hidden)


def test_right_answer_writes_nothing_to_stderr(capfd):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_one_hot(one_hot_scatter, hidden=True)
        check_embed(embed_index, hidden=True)
    assert capfd.readouterr().err == ""


def _one_hot_2d_only(indices, num_classes):
    B, T = indices.shape  # code written for exactly two axes
    return one_hot_scatter(indices, num_classes)


WRONG_ONE_HOT = {
    "integer result": (lambda i, C: F.one_hot(i, C), "should be a floating-point tensor, got torch.int64"),
    **shared("one_hot"),  # one_hot_from_max: sizes the classes axis from indices.max()
    "classes first": (lambda i, C: one_hot_scatter(i, C).movedim(-1, 0), "classes axis should come last"),
    "off by one": (lambda i, C: one_hot_scatter(i, C).roll(1, -1), "one position too far right"),
    "no classes axis": (lambda i, C: i.float(), "classes axis is missing"),
    "two axes only": (_one_hot_2d_only, "raised ValueError"),
    "wrong device": (lambda i, C: one_hot_scatter(i, C).to("meta"), "is on device 'meta'"),
    "NaN": (lambda i, C: one_hot_scatter(i, C) * float("nan"), "contains NaN"),
}


@pytest.mark.parametrize("name", list(WRONG_ONE_HOT))
def test_one_hot_rejects_wrong_code(name):
    fn, diagnosis = WRONG_ONE_HOT[name]
    assert_rejected(check_one_hot, fn, diagnosis, "one_hot")


WRONG_EMBED = {
    "float32 one-hot times float64 weight": (lambda i, W: one_hot_scatter(i, W.shape[0]) @ W,
                                             "give it weight's dtype and device"),
    **shared("embed"),  # embed_columns
    "returns the one-hot": (lambda i, W: one_hot_scatter(i, W.shape[0]).to(W), "that is the one-hot tensor"),
    "float32": (lambda i, W: W[i].float(), "precision was lost"),
    "shifted rows": (lambda i, W: W[(i + 1) % W.shape[0]], "largest error"),
    "wrong device": (lambda i, W: W[i].to("meta"), "is on device 'meta'"),
}


@pytest.mark.parametrize("name", list(WRONG_EMBED))
def test_embed_rejects_wrong_code(name):
    fn, diagnosis = WRONG_EMBED[name]
    assert_rejected(check_embed, fn, diagnosis)


def test_visible_one_hot_catches_ignored_num_classes():
    # the 1-D visible case keeps every index below num_classes - 1
    with pytest.raises(CheckFailed, match="must have num_classes entries"):
        check_one_hot(lambda i, C: F.one_hot(i).float())
