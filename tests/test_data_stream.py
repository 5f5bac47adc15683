"""rnncourse.data.stream: one long stream cut into rows and T-step chunks with a
carried state (lessons 02 and 08), and the endless stream of fresh batches."""
import pytest
import torch

from rnncourse.data.stream import BatchStream, batchify, detach_state, generator_of, tbptt_chunks
from rnncourse.guard import BlockedError, blocked


def test_batchify_cuts_contiguous_rows_and_drops_the_tail():
    rows = batchify(torch.arange(23), 4)  # L = 5, 3 dropped
    assert rows.shape == (4, 5)
    assert rows[1].tolist() == [5, 6, 7, 8, 9]
    values = batchify(torch.randn(20, 3), 2)  # value vectors keep their feature axis
    assert values.shape == (2, 10, 3)


def test_batchify_rejects_rows_too_short_for_a_pair():
    with pytest.raises(ValueError, match="rows of 1"):
        batchify(torch.arange(5), 4)


def test_chunks_shift_targets_and_keep_a_short_tail():
    rows = batchify(torch.arange(24), 2)  # (2, 12)
    chunks = tbptt_chunks(rows, 5)
    assert [x.shape[1] for x, _ in chunks] == [5, 5, 1]  # 11 input steps
    for x, y in chunks:
        assert torch.equal(y, x + 1)  # each target is the next item of its row
    # chunk k+1 continues chunk k row by row: that is what makes a carried state valid
    assert torch.equal(chunks[1][0][:, 0], chunks[0][0][:, -1] + 1)
    assert torch.cat([x for x, _ in chunks], dim=1).tolist() == rows[:, :-1].tolist()


def test_carried_state_through_chunks_equals_one_run():
    torch.manual_seed(0)
    rnn = torch.nn.LSTM(1, 3, batch_first=True)
    rows = batchify(torch.randn(40, 1), 2)  # (2, 20, 1)
    whole, _ = rnn(rows[:, :-1])
    state, parts = None, []
    for x, _ in tbptt_chunks(rows, 6):
        out, state = rnn(x, state)
        state = detach_state(state)
        assert all(not s.requires_grad for s in state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=1), whole)
    assert detach_state(None) is None


def test_the_helpers_are_off_while_a_learner_version_is_checked():
    with blocked("batchify"):
        with pytest.raises(BlockedError):
            batchify(torch.arange(10), 2)
        with pytest.raises(BlockedError):
            tbptt_chunks(torch.arange(10).view(2, 5), 2)


def test_batch_stream_is_seeded_fresh_and_restarts():
    stream = BatchStream(lambda gen: torch.rand(2, generator=gen), seed=3)
    first = stream.take(3)
    assert not torch.equal(first[0], first[1])
    assert all(torch.equal(a, b) for a, b in zip(first, stream.take(3)))
    gen = torch.Generator().manual_seed(3)
    assert torch.equal(first[0], torch.rand(2, generator=gen))


def test_generator_of():
    gen = torch.Generator()
    assert generator_of(gen) is gen
    with pytest.raises(TypeError):
        generator_of(True)
