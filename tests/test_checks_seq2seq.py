"""Lesson 09's checks pass right answers (looped or vectorised, any device) and
name the wrong ones."""
import pytest
import torch

import _seq2seq_answers as A
from _reject import assert_rejected
from rnncourse.checks import seq2seq as C
from rnncourse.checks.seq2seq_refs import beam_reference, exhaustive, toy_decoder
from rnncourse.decoding import beam_search as package_beam


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [A.decoder_io, A.decoder_io_loop, A.decoder_io_list_then_move])
def test_decoder_io_accepts_right_answers(fn, hidden):
    C.check_decoder_io(fn, hidden=hidden)


@pytest.mark.parametrize("fn, phrase", [
    (A.decoder_io_not_shifted, "not shifted"),
    (A.decoder_io_no_eos, "EOS is missing"),
    (A.decoder_io_cpu_mask, "device="),
    (A.decoder_io_mask_without_eos, "mask leaves out the EOS"),
])
def test_decoder_io_names_mistakes(fn, phrase):
    print(assert_rejected(C.check_decoder_io, fn, phrase, "decoder_io"))


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [A.greedy_decode, A.greedy_decode_rows])
def test_greedy_accepts_right_answers(fn, hidden):
    C.check_greedy_decode(fn, hidden=hidden)


@pytest.mark.parametrize("fn, phrase", [
    (A.greedy_stop_at_first, "first EOS"),
    (A.greedy_no_device, "device="),
    (A.greedy_no_pad, "keeps its generated tokens after its EOS"),
    (A.greedy_all_steps, "always runs max_len steps"),
])
def test_greedy_names_mistakes(fn, phrase):
    print(assert_rejected(C.check_greedy_decode, fn, phrase, "greedy_decode"))


@pytest.mark.parametrize("hidden", [False, True])
@pytest.mark.parametrize("fn", [A.beam_search, A.beam_lists])
def test_beam_accepts_right_answers(fn, hidden):
    C.check_beam_search(fn, hidden=hidden)


@pytest.mark.parametrize("fn, phrase", [
    (A.beam_search_drops_finished, "dropped"),
    (A.beam_search_no_norm, "no length normalisation"),
    (A.beam_one_hypothesis, "expands only the best hypothesis"),
    (A.beam_duplicate_start, "copies of BOS"),
    (A.beam_search_never_eos, "is wrong"),
])
def test_beam_names_mistakes(fn, phrase):
    print(assert_rejected(C.check_beam_search, fn, phrase, "beam_search"))


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("K", [1, 2, 3, 7])
def test_check_reference_equals_the_package_beam_search(seed, K):
    gen = torch.Generator().manual_seed(seed)
    step = toy_decoder(5, 4, gen, torch.float64, "cpu", sharp=1.5)
    h0 = torch.randn(1, 4, generator=gen, dtype=torch.float64)
    tokens, score = beam_reference(step, h0, K, 5, 1, 2, 0.7)
    out = package_beam(step, h0, lambda s, i: s[i], 1, K, 5, alpha=0.7, bos=1, eos=2)
    assert out.tokens[0, :out.lengths[0]].tolist() == tokens
    assert float(out.scores[0]) == pytest.approx(score, abs=1e-12)
    if K == 7:
        assert beam_reference(step, h0, 5 ** 3, 3, 1, 2, 0.7)[0] == exhaustive(step, h0, 5, 3, 1, 2, 0.7)[0]


def test_the_device_trap_leaves_right_code_alone():
    from rnncourse.checks.seq2seq_refs import DefaultDeviceTrap
    x = torch.randn(3)
    with DefaultDeviceTrap():
        assert (x + torch.tensor(1.0)).device.type == "cpu"  # 0-dim: allowed with any device
        assert torch.zeros(3, device=x.device).device.type == "cpu"
        assert torch.full_like(x, 2).device.type == "cpu"
        assert torch.zeros(3).device.type == "meta"
        assert torch.tensor([1, 2]).device.type == "meta"
    assert torch.zeros(3).device.type == "cpu"


# ---------------------------------------------------------------- switched off

def decoder_io_uses_package(targets, bos, eos, pad):
    from rnncourse.data.seq2seq import decoder_inputs_targets
    return decoder_inputs_targets(targets, bos, eos, pad)


def greedy_uses_package(step, h0, max_len, bos, eos, pad):
    from rnncourse.decoding import greedy_decode
    return greedy_decode(step, h0, h0.shape[0], max_len, bos=bos, eos=eos, pad=pad, device=h0.device).tokens


def greedy_uses_the_checks_reference(step, h0, max_len, bos, eos, pad):
    from rnncourse.checks.seq2seq_refs import greedy_reference
    return greedy_reference(step, h0, max_len, bos, eos, pad)


def beam_uses_package(step, h0, beam_width, max_len, bos, eos, alpha):
    from rnncourse.decoding import beam_search
    out = beam_search(step, h0, lambda h, i: h[i], 1, beam_width, max_len, alpha=alpha, bos=bos, eos=eos)
    return out.tokens[0], float(out.scores[0])


@pytest.mark.parametrize("check, fn, phrase", [
    (C.check_decoder_io, decoder_io_uses_package, "decoder_inputs_targets (rnncourse/data/seq2seq.py) was called"),
    (C.check_greedy_decode, greedy_uses_package, "greedy_decode (rnncourse/decoding.py) was called"),
    (C.check_greedy_decode, greedy_uses_the_checks_reference,
     "greedy_reference (rnncourse/checks/seq2seq_refs.py) was called"),
    (C.check_beam_search, beam_uses_package, "beam_search (rnncourse/decoding.py) was called"),
], ids=["decoder_io", "greedy", "greedy_reference", "beam"])
def test_the_package_answers_are_switched_off(check, fn, phrase):
    # the decoders the checks hand over run (they are the check's own), the package's answers do not
    print(assert_rejected(check, fn, phrase))
