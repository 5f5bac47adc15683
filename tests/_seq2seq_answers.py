"""Right and wrong answers to lesson 09's exercises, written as learners would:
the tests of the checks and the simulated class both use them."""
import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence


# ---------------------------------------------------------------- decoder_io

def decoder_io(targets, bos, eos, pad):
    ins = [torch.cat([y.new_full((1,), bos), y]) for y in targets]
    outs = [torch.cat([y, y.new_full((1,), eos)]) for y in targets]
    tgt_in = pad_sequence(ins, batch_first=True, padding_value=pad)
    tgt_out = pad_sequence(outs, batch_first=True, padding_value=pad)
    lengths = torch.tensor([len(y) + 1 for y in targets], device=tgt_out.device)
    mask = torch.arange(tgt_out.shape[1], device=tgt_out.device)[None, :] < lengths[:, None]
    return tgt_in, tgt_out, mask


def decoder_io_loop(targets, bos, eos, pad):
    dev = targets[0].device
    T = max(len(y) for y in targets) + 1
    tgt_in = torch.full((len(targets), T), pad, dtype=torch.long, device=dev)
    tgt_out = torch.full((len(targets), T), pad, dtype=torch.long, device=dev)
    mask = torch.zeros(len(targets), T, dtype=torch.bool, device=dev)
    for b, y in enumerate(targets):
        n = len(y)
        tgt_in[b, 0] = bos
        tgt_in[b, 1:n + 1] = y
        tgt_out[b, :n] = y
        tgt_out[b, n] = eos
        mask[b, :n + 1] = True
    return tgt_in, tgt_out, mask


def decoder_io_list_then_move(targets, bos, eos, pad):
    # builds on the CPU from Python lists, then moves: right on any device
    T = max(len(y) for y in targets) + 1
    rows_in, rows_out, rows_m = [], [], []
    for y in targets:
        y = y.tolist()
        rows_in.append([bos] + y + [pad] * (T - 1 - len(y)))
        rows_out.append(y + [eos] + [pad] * (T - 1 - len(y)))
        rows_m.append([True] * (len(y) + 1) + [False] * (T - 1 - len(y)))
    dev = targets[0].device
    return (torch.tensor(rows_in).to(dev), torch.tensor(rows_out).to(dev), torch.tensor(rows_m).to(dev))


def decoder_io_not_shifted(targets, bos, eos, pad):
    tgt_in, tgt_out, mask = decoder_io(targets, bos, eos, pad)
    return tgt_out.clone(), tgt_out, mask


def decoder_io_no_eos(targets, bos, eos, pad):
    tgt_in, tgt_out, mask = decoder_io(targets, bos, eos, pad)
    tgt_out = torch.where(tgt_out == eos, torch.full_like(tgt_out, pad), tgt_out)
    return tgt_in, tgt_out, mask & (tgt_out != pad)


def decoder_io_cpu_mask(targets, bos, eos, pad):
    tgt_in, tgt_out, _ = decoder_io(targets, bos, eos, pad)
    lengths = torch.tensor([len(y) + 1 for y in targets])
    mask = torch.arange(tgt_out.shape[1])[None, :] < lengths[:, None]
    return tgt_in, tgt_out, mask


# ---------------------------------------------------------------- greedy_decode

def greedy_decode(step, h0, max_len, bos, eos, pad):
    B = h0.shape[0]
    y = torch.full((B,), bos, dtype=torch.long, device=h0.device)
    done = torch.zeros(B, dtype=torch.bool, device=h0.device)
    h, out = h0, []
    for _ in range(max_len):
        logits, h = step(y, h)
        y = logits.argmax(dim=-1)
        out.append(torch.where(done, torch.full_like(y, pad), y))
        done = done | (y == eos)
        if done.all():
            break
    return torch.stack(out, dim=1)


def greedy_decode_rows(step, h0, max_len, bos, eos, pad):
    # one row at a time, padded at the end: slower, equally right
    rows = []
    for b in range(h0.shape[0]):
        h, y, row = h0[b:b + 1], torch.tensor([bos], device=h0.device), []
        for _ in range(max_len):
            logits, h = step(y, h)
            y = logits.argmax(-1)
            row.append(int(y))
            if row[-1] == eos:
                break
        rows.append(row)
    L = max(len(r) for r in rows)
    return torch.tensor([r + [pad] * (L - len(r)) for r in rows], device=h0.device)


def greedy_stop_at_first(step, h0, max_len, bos, eos, pad):
    B = h0.shape[0]
    y = torch.full((B,), bos, dtype=torch.long, device=h0.device)
    h, out = h0, []
    for _ in range(max_len):
        logits, h = step(y, h)
        y = logits.argmax(dim=-1)
        out.append(y)
        if (y == eos).any():
            break
    return torch.stack(out, dim=1)


def greedy_no_device(step, h0, max_len, bos, eos, pad):
    B = h0.shape[0]
    y = torch.full((B,), bos, dtype=torch.long)
    done = torch.zeros(B, dtype=torch.bool)
    h, out = h0, []
    for _ in range(max_len):
        logits, h = step(y, h)
        y = logits.argmax(dim=-1)
        out.append(torch.where(done, torch.full_like(y, pad), y))
        done = done | (y == eos)
        if done.all():
            break
    return torch.stack(out, dim=1)


# ---------------------------------------------------------------- beam_search

def beam_search(step, h0, beam_width, max_len, bos, eos, alpha):
    dev = h0.device
    tokens = torch.full((1, 0), 0, dtype=torch.long, device=dev)  # (k, t) live prefixes
    scores = torch.zeros(1, dtype=torch.float64, device=dev)  # (k,)
    h, y, k = h0, torch.full((1,), bos, dtype=torch.long, device=dev), beam_width
    finished = []  # (log p, tokens)
    for t in range(1, max_len + 1):
        logits, h = step(y, h)
        logp = torch.log_softmax(logits.double(), dim=-1)  # (live, V)
        V = logp.shape[1]
        cand = (scores[:, None] + logp).reshape(-1)
        top, idx = cand.topk(min(k, cand.numel()))
        hyp, tok = idx // V, idx % V
        tokens = torch.cat([tokens[hyp], tok[:, None]], dim=1)
        ended = tok == eos
        for s, seq in zip(top[ended].tolist(), tokens[ended]):
            finished.append((s, seq))
        k -= int(ended.sum())
        keep = ~ended
        if k == 0 or not keep.any():
            tokens = tokens[keep]
            scores = top[keep]
            break
        tokens, scores, y = tokens[keep], top[keep], tok[keep]
        h = h[hyp[keep]]
    pool = [(s / len(seq) ** alpha, seq) for s, seq in finished]
    pool += [(float(s) / tokens.shape[1] ** alpha, seq) for s, seq in zip(scores, tokens)]
    best = max(pool, key=lambda p: p[0])
    return best[1], best[0]


def beam_search_never_eos(step, h0, beam_width, max_len, bos, eos, alpha):
    dev = h0.device
    tokens = torch.zeros(1, 0, dtype=torch.long, device=dev)
    scores = torch.zeros(1, dtype=torch.float64, device=dev)
    h, y = h0, torch.full((1,), bos, dtype=torch.long, device=dev)
    for t in range(max_len):
        logits, h = step(y, h)
        logp = torch.log_softmax(logits.double(), -1)
        V = logp.shape[1]
        logp[:, eos] = float("-inf") if t < max_len - 1 else logp[:, eos]
        cand = (scores[:, None] + logp).reshape(-1)
        top, idx = cand.topk(min(beam_width, cand.numel()))
        top, idx = top[top > float("-inf")], idx[top > float("-inf")]
        hyp, tok = idx // V, idx % V
        tokens, scores, y, h = torch.cat([tokens[hyp], tok[:, None]], 1), top, tok, h[hyp]
    best = int((scores / tokens.shape[1] ** alpha).argmax())
    return tokens[best], float(scores[best] / tokens.shape[1] ** alpha)


def beam_search_no_norm(step, h0, beam_width, max_len, bos, eos, alpha):
    return beam_search(step, h0, beam_width, max_len, bos, eos, 0.0)


def decoder_io_mask_without_eos(targets, bos, eos, pad):
    tgt_in, tgt_out, mask = decoder_io(targets, bos, eos, pad)
    return tgt_in, tgt_out, mask & (tgt_out != eos)


def greedy_no_pad(step, h0, max_len, bos, eos, pad):
    B = h0.shape[0]
    y = torch.full((B,), bos, dtype=torch.long, device=h0.device)
    done = torch.zeros(B, dtype=torch.bool, device=h0.device)
    h, out = h0, []
    for _ in range(max_len):
        logits, h = step(y, h)
        y = logits.argmax(dim=-1)
        out.append(y)
        done = done | (y == eos)
        if done.all():
            break
    return torch.stack(out, dim=1)


def greedy_all_steps(step, h0, max_len, bos, eos, pad):
    B = h0.shape[0]
    y = torch.full((B,), bos, dtype=torch.long, device=h0.device)
    done = torch.zeros(B, dtype=torch.bool, device=h0.device)
    h, out = h0, []
    for _ in range(max_len):
        logits, h = step(y, h)
        y = logits.argmax(dim=-1)
        out.append(torch.where(done, torch.full_like(y, pad), y))
        done = done | (y == eos)
    return torch.stack(out, dim=1)


def _beam(step, h0, beam_width, max_len, bos, eos, alpha, one=False, copies=False, drop=False):
    import math
    live = [(0.0, [], h0)] * (beam_width if copies else 1)
    finished, k = [], beam_width
    for _ in range(max_len):
        cands = []
        for score, seq, h in (live[:1] if one else live):
            y = torch.tensor([seq[-1] if seq else bos], device=h0.device)
            logits, h2 = step(y, h)
            logp = torch.log_softmax(logits[0].double(), -1).tolist()
            cands += [(score + lp, seq + [v], h2) for v, lp in enumerate(logp)]
        cands.sort(key=lambda c: -c[0])
        kept = cands[:k]
        finished += [] if drop else [c for c in kept if c[1][-1] == eos]
        live = [c for c in kept if c[1][-1] != eos]
        k -= len(kept) - len(live)
        if not live:
            break
    if not finished + live:
        return torch.zeros(0, dtype=torch.long, device=h0.device), float("-inf")
    best = max(finished + live, key=lambda c: c[0] / len(c[1]) ** alpha)
    return torch.tensor(best[1], device=h0.device), best[0] / len(best[1]) ** alpha


def beam_one_hypothesis(step, h0, beam_width, max_len, bos, eos, alpha):
    return _beam(step, h0, beam_width, max_len, bos, eos, alpha, one=True)


def beam_duplicate_start(step, h0, beam_width, max_len, bos, eos, alpha):
    return _beam(step, h0, beam_width, max_len, bos, eos, alpha, copies=True)


def beam_lists(step, h0, beam_width, max_len, bos, eos, alpha):
    return _beam(step, h0, beam_width, max_len, bos, eos, alpha)


def beam_search_drops_finished(step, h0, beam_width, max_len, bos, eos, alpha):
    return _beam(step, h0, beam_width, max_len, bos, eos, alpha, drop=True)
