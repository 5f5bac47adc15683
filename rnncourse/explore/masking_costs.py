"""Lesson 07's measurements on padded batches: what padding does to a loss, to a
final state, and what packing costs against masking.

* :func:`loss_under_padding`: the loss of one fixed batch as extra padding columns
  are appended, for a masked and an every-position loss, with a unidirectional
  LSTM and with a bidirectional one (unpacked and packed);
* :func:`final_states`: a short sequence run alone, and in a padded batch read at
  the last padded position, at its last real position, and packed;
* :func:`packing_vs_masking`: the same LSTM classifier on the same batch, once
  on the padded tensor read at ``lengths - 1`` (masking) and once on a
  ``PackedSequence`` read from ``h_n`` (packing): the two results and gradients
  compared, and the time of a forward and backward pass of each.
"""
from __future__ import annotations

import time

import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from rnncourse import masking
from rnncourse.data.padding import pad_batch
from rnncourse.experiments.settings import torch_threads


def add_padding(tokens: torch.Tensor, extra: int, pad_value: int = 0) -> torch.Tensor:
    """(B, T) -> (B, T + extra): ``extra`` more padded positions at the end of every row."""
    return torch.cat([tokens, tokens.new_full((tokens.shape[0], extra), pad_value)], dim=1)


class _Tagger(torch.nn.Module):
    """Embedding(padding_idx=0) -> LSTM (one or two directions, packed or not) -> linear."""

    def __init__(self, vocab: int, classes: int, bidirectional: bool, packed: bool, E: int = 8, H: int = 8):
        super().__init__()
        self.packed = packed
        self.embed = torch.nn.Embedding(vocab, E, padding_idx=0)
        self.rnn = torch.nn.LSTM(E, H, batch_first=True, bidirectional=bidirectional)
        self.head = torch.nn.Linear(H * (2 if bidirectional else 1), classes)

    def forward(self, tokens, lengths):
        x = self.embed(tokens)  # (B, T, E)
        if not self.packed:
            return self.head(self.rnn(x)[0])  # (B, T, C)
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        out, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=tokens.shape[1])
        return self.head(out)  # (B, T, C)


MODELS = {"LSTM": (False, False), "BiLSTM, padded": (True, False), "BiLSTM, packed": (True, True)}


def loss_under_padding(tokens, tags, lengths, vocab: int, classes: int, extras=(0, 10, 50, 200),
                       seed: int = 0, masked_loss=None, threads: int | None = 1) -> dict:
    """(model, loss) -> [loss of the batch with each number of extra padded columns].

    Losses: ``"masked"``, the mean over real tokens (``masked_loss``, default the
    package's); ``"every position"``, ``F.cross_entropy`` over all B*T positions with
    the padded targets labelled 0 (what ``nn.CrossEntropyLoss()`` on a padded batch does).
    The models are untrained (seeded): padding changes a loss before any training.
    """
    with torch_threads(threads):  # tiny models: one thread is faster than two waiting for each other
        return _loss_under_padding(tokens, tags, lengths, vocab, classes, extras, seed,
                                   masked_loss or masking.masked_cross_entropy)


def _loss_under_padding(tokens, tags, lengths, vocab, classes, extras, seed, masked_loss) -> dict:
    out = {}
    for name, (bi, packed) in MODELS.items():
        torch.manual_seed(seed)
        model = _Tagger(vocab, classes, bi, packed).eval()
        for kind in ("masked", "every position"):
            out[(name, kind)] = []
        with torch.no_grad():
            for extra in extras:
                x = add_padding(tokens, extra)  # (B, T + extra)
                y = add_padding(tags, extra)  # padded targets are 0, a real class
                mask = masking.lengths_to_mask(lengths, x.shape[1])
                logits = model(x, lengths)  # (B, T + extra, C)
                out[(name, "masked")].append(float(masked_loss(logits, y, mask)))
                out[(name, "every position")].append(float(torch.nn.functional.cross_entropy(
                    logits.reshape(-1, classes), y.reshape(-1))))
    return out


def final_states(sequences, index: int = 0, seed: int = 0, I: int = 3, H: int = 4) -> dict:
    """The final state of ``sequences[index]`` run alone, and from a padded batch of all of
    ``sequences`` read four ways. Returns name -> max |difference from running it alone|."""
    torch.manual_seed(seed)
    lstm = torch.nn.LSTM(I, H, batch_first=True).double()
    padded, lengths, _ = pad_batch(sequences)  # (B, T, I)
    with torch.no_grad():
        alone = lstm(sequences[index][None])[0][0, -1]  # (H,)
        outputs, (h_n, _) = lstm(padded)  # (B, T, H)
        _, (h_packed, _) = lstm(pack_padded_sequence(padded, lengths, batch_first=True, enforce_sorted=False))
    read = {"padded batch, outputs[:, -1]": outputs[index, -1],
            "padded batch, h_n (no packing)": h_n[0, index],
            "padded batch, outputs[b, lengths[b] - 1]": masking.last_valid(outputs, lengths)[index],
            "packed batch, h_n": h_packed[0, index]}
    return {k: float((v - alone).abs().max()) for k, v in read.items()}


class _Classifier(torch.nn.Module):
    def __init__(self, vocab: int, E: int, H: int):
        super().__init__()
        self.embed = torch.nn.Embedding(vocab, E, padding_idx=0)
        self.rnn = torch.nn.LSTM(E, H, batch_first=True)
        self.head = torch.nn.Linear(H, 2)

    def masked(self, tokens, lengths):
        outputs, _ = self.rnn(self.embed(tokens))  # (B, T, H): every step, padding included
        return self.head(masking.last_valid(outputs, lengths))

    def packed(self, tokens, lengths):
        packed = pack_padded_sequence(self.embed(tokens), lengths.cpu(), batch_first=True, enforce_sorted=False)
        _, (h_n, _) = self.rnn(packed)  # h_n at each sequence's own last step
        return self.head(h_n[0])


def _timed(fn, repeats: int, device) -> float:
    """Best wall time of ``repeats`` calls (after one warm-up), the GPU synchronised."""
    sync = torch.cuda.synchronize if torch.device(device).type == "cuda" else (lambda: None)
    fn()
    best = float("inf")
    for _ in range(repeats):
        sync()
        start = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def packing_vs_masking(tokens, lengths, labels, vocab: int, E: int = 16, H: int = 32, device="cpu",
                       repeats: int = 5, seed: int = 0, threads: int | None = 1) -> dict:
    """Masking against packing for one batch: the largest differences between their logits,
    losses and weight gradients, and the best time of a forward + backward pass of each.

    ``threads``: torch's CPU threads while timing (default 1: on a shared machine, threads
    waiting for each other made both times many times longer and unstable; None leaves it)."""
    with torch_threads(threads):
        return _packing_vs_masking(tokens, lengths, labels, vocab, E, H, device, repeats, seed)


def _packing_vs_masking(tokens, lengths, labels, vocab, E, H, device, repeats, seed) -> dict:
    torch.manual_seed(seed)
    model = _Classifier(vocab, E, H).to(device)
    tokens, lengths, labels = tokens.to(device), lengths.to(device), labels.to(device)
    results, grads = {}, {}
    for way in ("masked", "packed"):
        model.zero_grad()
        logits = getattr(model, way)(tokens, lengths)  # (B, 2)
        loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        results[way] = (logits.detach(), loss.detach())
        grads[way] = [p.grad.detach().clone() for p in model.parameters()]

    def step(way):
        def run():
            model.zero_grad()
            torch.nn.functional.cross_entropy(getattr(model, way)(tokens, lengths), labels).backward()
        return run

    masked_s = _timed(step("masked"), repeats, device)
    packed_s = _timed(step("packed"), repeats, device)
    return {"logits_diff": float((results["masked"][0] - results["packed"][0]).abs().max()),
            "loss_diff": float((results["masked"][1] - results["packed"][1]).abs()),
            "grad_diff": max(float((a - b).abs().max()) for a, b in zip(grads["masked"], grads["packed"])),
            "masked_s": masked_s, "packed_s": packed_s,
            "padding_fraction": float(1 - lengths.sum() / lengths.numel() / tokens.shape[1]),
            "packed_saves": 1 - packed_s / masked_s}
