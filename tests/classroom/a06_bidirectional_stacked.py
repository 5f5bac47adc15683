"""Simulated learners of lesson 06: reverse_padded, bilstm, stacked_bilstm.

The lesson asks bilstm to call the learner's reverse_padded and stacked_bilstm to
call bilstm, so a wrong reverse would cost the later exercises too; the learner
with a wrong reverse here writes a bilstm of its own (reversing inline, right) so
that the mistake is seen costing its own exercise and nothing else. Likewise the
learners with a wrong bilstm write a stacked_bilstm of their own (both
directions inline); the wrong stacked_bilstm learners use the instructor's bilstm.
"""
from .submissions import Submission
from .wrong import (
    bilstm_directions_swapped, bilstm_uses_nn_lstm, bilstm_whole_flip, bilstm_zeros_on_cpu, body,
    reverse_padded_uses_library, reverse_padded_whole_flip, stacked_dropout_after_last,
    stacked_dropout_on_state, stacked_forward_half, stacked_h_n_by_direction,
)

REVERSE, BILSTM, STACKED = "test_reverse_padded", "test_bilstm", "test_stacked_bilstm"

# A correct bilstm that does not call reverse_padded (each sequence reversed in a loop).
OWN_BILSTM = """
if isinstance(x, PackedSequence):
    x, lengths = pad_packed_sequence(x, batch_first=True)
    lengths = lengths.to(x.device)
B, T, _ = x.shape

def flip(t, L):
    rows = [torch.cat([t[b, :int(L[b])].flip(0), t[b, int(L[b]):]]) for b in range(B)]
    return torch.stack(rows)

mask = torch.arange(T, device=x.device)[None, :] < lengths[:, None]
outs, hs, cs = [], [], []
for cell, inputs in ((cell_fw, x), (cell_bw, flip(x, lengths))):
    h = c = x.new_zeros(B, cell.hidden_size)
    steps = []
    for t in range(T):
        h2, c2 = cell(inputs[:, t], (h, c))
        m = mask[:, t, None]
        h, c = torch.where(m, h2, h), torch.where(m, c2, c)
        steps.append(h * m)
    outs.append(torch.stack(steps, 1))
    hs.append(h)
    cs.append(c)
outs[1] = flip(outs[1], lengths)
return torch.cat(outs, -1), (torch.stack(hs), torch.stack(cs))
"""

# A correct stacked_bilstm that does not call bilstm (both directions inline), for the
# learners whose bilstm is wrong: their mistake must cost test_bilstm only.
OWN_STACKED = """
B, T, _ = x.shape
mask = torch.arange(T, device=x.device)[None, :] < lengths[:, None]

def flip(t):
    return torch.stack([torch.cat([t[b, :int(lengths[b])].flip(0), t[b, int(lengths[b]):]]) for b in range(B)])

out, hs, cs = x, [], []
for k, pair in enumerate(layers):
    inputs = dropout(out) if k else out
    halves = []
    for cell, seq in zip(pair, (inputs, flip(inputs))):
        h = c = x.new_zeros(B, cell.hidden_size)
        steps = []
        for t in range(T):
            h2, c2 = cell(seq[:, t], (h, c))
            m = mask[:, t, None]
            h, c = torch.where(m, h2, h), torch.where(m, c2, c)
            steps.append(h * m)
        halves.append(torch.stack(steps, 1))
        hs.append(h)
        cs.append(c)
    out = torch.cat([halves[0], flip(halves[1])], -1)
return out, (torch.stack(hs), torch.stack(cs))
"""

SUBMISSIONS = [
    Submission(
        "other_style", "correct, written differently (a loop over the batch; per-sequence cells; "
                       "an unrolled two-layer stack)",
        bodies={
            "reverse_padded": """
                out = x.clone()
                for b in range(x.shape[0]):
                    L = int(lengths[b])
                    out[b, :L] = x[b, :L].flip(0)
                return out
            """,
            "bilstm": OWN_BILSTM,
            "stacked_bilstm": """
                (fw0, bw0), (fw1, bw1) = layers
                out0, (h0, c0) = bilstm(x, lengths, fw0, bw0)
                out1, (h1, c1) = bilstm(dropout(out0), lengths, fw1, bw1)
                return out1, (torch.stack([h0[0], h0[1], h1[0], h1[1]]),
                              torch.stack([c0[0], c0[1], c1[0], c1[1]]))
            """,
        }),
    Submission(
        "whole_flip", "reverse_padded flips the whole padded tensor (x.flip(1)); bilstm reverses inline",
        bodies={"reverse_padded": body(reverse_padded_whole_flip), "bilstm": OWN_BILSTM},
        lost={REVERSE}),
    Submission(
        "backward_on_padding", "bilstm runs the backward direction over x.flip(1), starting on the padding",
        bodies={"bilstm": body(bilstm_whole_flip), "stacked_bilstm": OWN_STACKED},
        lost={BILSTM}),
    Submission(
        "directions_swapped", "bilstm concatenates [backward, forward]",
        bodies={"bilstm": body(bilstm_directions_swapped), "stacked_bilstm": OWN_STACKED},
        lost={BILSTM}),
    Submission(
        "zeros_on_cpu", "bilstm starts its states with torch.zeros(B, H) (on the CPU whatever the device)",
        bodies={"bilstm": body(bilstm_zeros_on_cpu), "stacked_bilstm": OWN_STACKED},
        lost={BILSTM}),
    Submission(
        "h_n_by_direction", "stacked_bilstm orders h_n by direction instead of layer-major",
        bodies={"stacked_bilstm": body(stacked_h_n_by_direction)},
        lost={STACKED}),
    Submission(
        "forward_half", "stacked_bilstm feeds the second layer only the forward half",
        bodies={"stacked_bilstm": body(stacked_forward_half)},
        lost={STACKED}),
    Submission(
        "dropout_after_last", "stacked_bilstm applies dropout after every layer, the last one too",
        bodies={"stacked_bilstm": body(stacked_dropout_after_last)},
        lost={STACKED}),
    Submission(
        "dropout_on_state", "stacked_bilstm applies dropout to the recurrent state at every step",
        bodies={"stacked_bilstm": body(stacked_dropout_on_state)},
        lost={STACKED}),
    Submission(
        "uses_library", "reverse_padded calls rnncourse.masking.reverse_padded, bilstm builds torch.nn.LSTM",
        bodies={"reverse_padded": body(reverse_padded_uses_library), "bilstm": body(bilstm_uses_nn_lstm),
                "stacked_bilstm": """
                out, hs, cs = x, [], []
                for k, (fw, bw) in enumerate(layers):
                    out, (h, c) = bilstm(dropout(out) if k else out, lengths, fw, bw)
                    hs.append(h)
                    cs.append(c)
                return out, (torch.cat(hs), torch.cat(cs))
            """},
        lost={REVERSE, BILSTM, STACKED}),
]
