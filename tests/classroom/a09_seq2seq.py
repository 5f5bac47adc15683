"""Simulated learners of lesson 09: decoder_io, greedy_decode, beam_search.

The three exercises are independent (nothing graded calls another), so each
wrong submission below must cost exactly its own exercise's points.
"""
import _seq2seq_answers as A

from .submissions import Submission
from .wrong import body

IO, GREEDY, BEAM = "test_decoder_io", "test_greedy_decode", "test_beam_search"

OTHER_STYLE = {
    "decoder_io": """
        dev = targets[0].device
        T = max(len(y) for y in targets) + 1
        tgt_in = torch.full((len(targets), T), pad, dtype=targets[0].dtype, device=dev)
        tgt_out = torch.full_like(tgt_in, pad)
        mask = torch.zeros(len(targets), T, dtype=torch.bool, device=dev)
        for b, y in enumerate(targets):
            n = len(y)
            tgt_in[b, 0] = bos
            tgt_in[b, 1:n + 1] = y
            tgt_out[b, :n] = y
            tgt_out[b, n] = eos
            mask[b, :n + 1] = True
        return tgt_in, tgt_out, mask
    """,
    "greedy_decode": body(A.greedy_decode_rows),  # one sequence at a time, then padded
    "beam_search": """
        import math
        live = [(0.0, [], h0)]  # (log p, tokens, state (1, H))
        finished, k = [], beam_width
        for _ in range(max_len):
            cands = []
            for score, seq, h in live:
                y = torch.tensor([seq[-1] if seq else bos], device=h0.device)
                logits, h2 = step(y, h)
                logp = torch.log_softmax(logits[0].double(), -1).tolist()
                cands += [(score + lp, seq + [v], h2) for v, lp in enumerate(logp)]
            cands.sort(key=lambda c: -c[0])
            live = []
            for c in cands[:k]:
                if c[1][-1] == eos:
                    finished.append(c)
                else:
                    live.append(c)
            k -= sum(1 for c in cands[:k] if c[1][-1] == eos)
            if not live:
                break
        best = max(finished + live, key=lambda c: c[0] / len(c[1]) ** alpha)
        return torch.tensor(best[1], device=h0.device), best[0] / len(best[1]) ** alpha
    """,
}

NOT_SHIFTED = """
    ins = [torch.cat([y, y.new_full((1,), eos)]) for y in targets]
    tgt = torch.nn.utils.rnn.pad_sequence(ins, batch_first=True, padding_value=pad)
    lengths = torch.tensor([len(y) + 1 for y in targets], device=tgt.device)
    mask = torch.arange(tgt.shape[1], device=tgt.device)[None, :] < lengths[:, None]
    return tgt.clone(), tgt, mask
"""

STOP_AT_FIRST = body(A.greedy_stop_at_first)

NO_DEVICE = body(A.greedy_no_device)  # tokens and flags made on the CPU, whatever h0's device

DROPS_FINISHED = OTHER_STYLE["beam_search"].replace(
    "finished.append(c)", "pass  # a finished hypothesis is forgotten")

NO_NORM = OTHER_STYLE["beam_search"].replace(
    "best = max(finished + live, key=lambda c: c[0] / len(c[1]) ** alpha)",
    "best = max(finished + live, key=lambda c: c[0])").replace(
    "best[0] / len(best[1]) ** alpha", "best[0]")

USES_PACKAGE = """
    from rnncourse.decoding import greedy_decode as package_greedy
    return package_greedy(step, h0, h0.shape[0], max_len, bos=bos, eos=eos, pad=pad,
                          device=h0.device).tokens
"""

SUBMISSIONS = [
    Submission("other_style", "correct, written differently (filled tensors; one row at a time; lists "
                              "of hypotheses)", bodies=OTHER_STYLE),
    Submission("not_shifted", "decoder_io: tgt_in is the target itself (not shifted behind BOS)",
               bodies={"decoder_io": NOT_SHIFTED}, lost={IO}),
    Submission("stop_at_first", "greedy_decode stops the batch at the first EOS of any row",
               bodies={"greedy_decode": STOP_AT_FIRST}, lost={GREEDY}),
    Submission("no_device", "greedy_decode creates its tokens and flags without device=",
               bodies={"greedy_decode": NO_DEVICE}, lost={GREEDY}),
    Submission("uses_package", "greedy_decode calls rnncourse.decoding.greedy_decode",
               bodies={"greedy_decode": USES_PACKAGE}, lost={GREEDY}),
    Submission("drops_finished", "beam_search forgets hypotheses that end with EOS",
               bodies={"beam_search": DROPS_FINISHED}, lost={BEAM}),
    Submission("no_norm", "beam_search compares raw log p, without length normalisation",
               bodies={"beam_search": NO_NORM}, lost={BEAM}),
]

REGRADE = "stop_at_first"
