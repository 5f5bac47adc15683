r"""Sequence-to-sequence tasks (lessons 09 and 10): vocabularies, seeded offline
generators of (source, target) pairs, and the collate that turns pairs into a
padded batch with decoder inputs and targets.

Shape legend: ``B`` pairs in a batch, ``S`` the longest source, ``T`` the
longest target plus one (for BOS or EOS), ``V`` a vocabulary's size.

Every vocabulary starts with the same three special ids::

    PAD = 0   fills the batch after a sequence's end (masked everywhere)
    BOS = 1   "begin": the decoder's first input
    EOS = 2   "end": the decoder's last target; generation stops when it is emitted

A pair holds plain token ids, without BOS or EOS. The collate adds them:

.. math::
    \text{tgt\_in} = (\text{BOS}, y_1, \dots, y_n), \qquad
    \text{tgt\_out} = (y_1, \dots, y_n, \text{EOS})

so that at step ``t`` the decoder reads ``tgt_in[t]`` (the previous target
token) and is trained to predict ``tgt_out[t]``: the two are the same sequence
shifted by one. Both have ``n + 1`` real positions, padded with PAD to ``T``,
and ``tgt_mask`` is True at them.

Tasks:

* :func:`reversal_pairs`: digits, the target is the source backwards;
* :func:`copy_pairs`: digits, the target is the source;
* :func:`date_pairs`: a human-readable date (``"tuesday, 3 march 2021"``,
  ``"Mar 03 2021"``, ``"3.3.2021"``, ...) to its ISO form ``"2021-03-03"``.

Pitfalls: a target without EOS gives a model that never learns to stop; a
decoder input that is not shifted (``tgt_in == tgt_out``) lets the decoder
copy its answer and learn nothing it can use at generation time.
"""
from __future__ import annotations

import datetime
from typing import List, NamedTuple, Sequence, Tuple

import torch
from torch import Tensor

from ..guard import check_reference_allowed
from ..validation import ShapeError
from .padding import pad_batch
from .stream import generator_of

PAD, BOS, EOS = 0, 1, 2
SPECIALS = ("<pad>", "<bos>", "<eos>")
Pair = Tuple[Tensor, Tensor]


class Vocab:
    """Symbols to ids and back; ids 0, 1, 2 are PAD, BOS, EOS, then ``symbols`` in order.

    ``Vocab("0123456789")`` has 13 ids: ``encode("301")`` is ``tensor([6, 3, 4])``.
    """

    def __init__(self, symbols: Sequence[str]):
        symbols = list(symbols)
        if len(set(symbols)) != len(symbols):
            raise ValueError("symbols must be distinct")
        if any(s in SPECIALS for s in symbols):
            raise ValueError(f"symbols may not include the special tokens {SPECIALS}")
        self.itos: List[str] = [*SPECIALS, *symbols]
        self.stoi = {s: i for i, s in enumerate(self.itos)}
        self.pad, self.bos, self.eos = PAD, BOS, EOS

    def __len__(self) -> int:
        return len(self.itos)

    def __repr__(self) -> str:
        return f"Vocab({''.join(self.itos[3:])!r})" if all(len(s) == 1 for s in self.itos[3:]) \
            else f"Vocab({self.itos[3:]!r})"

    def encode(self, symbols: Sequence[str], bos: bool = False, eos: bool = False) -> Tensor:
        """Ids (L,) int64 of a string or a list of symbols; KeyError names an unknown symbol."""
        ids = []
        for s in symbols:
            if s not in self.stoi or self.stoi[s] < len(SPECIALS):
                raise KeyError(f"symbol {s!r} is not in the vocabulary {self!r}")
            ids.append(self.stoi[s])
        return torch.tensor([BOS] * bos + ids + [EOS] * eos, dtype=torch.int64)

    def decode(self, ids, join: str = "") -> str:
        """The symbols of ``ids`` (a 1-D tensor or list): BOS and PAD are skipped,
        reading stops at the first EOS."""
        if isinstance(ids, Tensor):
            if ids.dim() != 1:
                raise ShapeError(f"ids must be 1-D (one sequence), got shape {tuple(ids.shape)}")
            ids = ids.tolist()
        out = []
        for i in ids:
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.itos[i])
        return join.join(out)


DIGITS = Vocab("0123456789")
ISO = Vocab("0123456789-")
MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december")
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
# Every character a human-readable date below can contain.
DATE_TEXT = Vocab(sorted(set("0123456789 ,./-" + "".join(MONTHS) + "".join(WEEKDAYS)
                             + "".join(MONTHS).upper() + "".join(WEEKDAYS).upper()
                             + "".join(m.title() for m in MONTHS + WEEKDAYS))))


def _lengths(n: int, min_len: int, max_len: int, gen: torch.Generator) -> Tensor:
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    return torch.randint(min_len, max_len + 1, (n,), generator=gen)  # (n,)


def digit_sequences(n: int, min_len: int, max_len: int, generator=None) -> List[Tensor]:
    """``n`` sequences of DIGITS ids, lengths uniform in [min_len, max_len]."""
    gen = generator_of(0 if generator is None else generator)
    lengths = _lengths(n, min_len, max_len, gen)
    first = len(SPECIALS)
    return [torch.randint(first, first + 10, (int(L),), generator=gen) for L in lengths]


def reversal_pairs(n: int, min_len: int = 5, max_len: int = 20, generator=None) -> List[Pair]:
    """(source, source reversed) pairs of DIGITS ids. Output position ``t`` depends on
    source position ``L - 1 - t``: the first output needs the last input, the last
    output the first input, so every output is far from its evidence in one direction."""
    return [(s, s.flip(0)) for s in digit_sequences(n, min_len, max_len, generator)]


def copy_pairs(n: int, min_len: int = 5, max_len: int = 20, generator=None) -> List[Pair]:
    """(source, source) pairs of DIGITS ids."""
    return [(s, s.clone()) for s in digit_sequences(n, min_len, max_len, generator)]


def _case(text: str, style: int) -> str:
    return (text.lower(), text.title(), text.upper())[style]


# Human-readable formats; {D} day, {DD} zero-padded day, {M}/{MM} month number,
# {Month}/{Mon} month name full/short, {Y} year, {Wd} weekday.
DATE_FORMATS = (
    "{D} {Month} {Y}", "{DD} {Mon} {Y}", "{Month} {D}, {Y}", "{Mon} {DD} {Y}",
    "{Wd}, {D} {Month} {Y}", "{Wd} {Month} {D}, {Y}", "{D}.{M}.{Y}", "{DD}.{MM}.{Y}",
    "{Y}/{MM}/{DD}", "{DD}-{Mon}-{Y}", "{Mon} {D} {Y}", "{D} {Mon}, {Y}",
)


def date_examples(n: int, generator=None, first: datetime.date = datetime.date(1950, 1, 1),
                  last: datetime.date = datetime.date(2049, 12, 31)) -> List[Tuple[str, str]]:
    """``n`` (human-readable, ISO) strings: a uniform date in [first, last], a uniform
    format of :data:`DATE_FORMATS`, names in lower, Title or UPPER case."""
    gen = generator_of(0 if generator is None else generator)
    span = (last - first).days + 1
    if n < 1 or span < 1:
        raise ValueError(f"need n >= 1 and first <= last, got n={n}, {first}..{last}")
    days = torch.randint(span, (n,), generator=gen).tolist()
    fmts = torch.randint(len(DATE_FORMATS), (n,), generator=gen).tolist()
    styles = torch.randint(3, (n,), generator=gen).tolist()
    out = []
    for d, f, s in zip(days, fmts, styles):
        date = first + datetime.timedelta(days=d)
        month = MONTHS[date.month - 1]
        text = DATE_FORMATS[f].format(
            D=date.day, DD=f"{date.day:02d}", M=date.month, MM=f"{date.month:02d}", Y=date.year,
            Month=_case(month, s), Mon=_case(month[:3], s), Wd=_case(WEEKDAYS[date.weekday()], s))
        out.append((text, date.isoformat()))
    return out


def date_pairs(n: int, generator=None) -> List[Pair]:
    """(DATE_TEXT ids, ISO ids) pairs of :func:`date_examples` (same seed, same dates)."""
    return [(DATE_TEXT.encode(a), ISO.encode(b)) for a, b in date_examples(n, generator)]


def decoder_inputs_targets(targets: Sequence[Tensor], bos: int = BOS, eos: int = EOS,
                           pad: int = PAD) -> Tuple[Tensor, Tensor, Tensor]:
    r"""Teacher-forcing inputs and targets of a batch of target sequences.

    For ``targets[b] = (y_1..y_n)``: ``tgt_in[b] = (bos, y_1..y_n)``,
    ``tgt_out[b] = (y_1..y_n, eos)``, both padded with ``pad`` to ``T = max n + 1``;
    ``tgt_mask[b, t] = t < n + 1``.

    targets: B tensors (n_b,) of integer ids (n_b may be 0)
    returns: tgt_in (B, T), tgt_out (B, T) in the targets' dtype; tgt_mask (B, T) bool;
    all on the targets' device
    """
    check_reference_allowed("data.seq2seq.decoder_inputs_targets")
    if isinstance(targets, Tensor) or not isinstance(targets, Sequence) or not len(targets):
        raise TypeError("targets must be a non-empty list of 1-D integer tensors")
    for b, y in enumerate(targets):
        if not isinstance(y, Tensor) or y.dim() != 1 or y.is_floating_point() or y.dtype == torch.bool:
            raise TypeError(f"targets[{b}] must be a 1-D integer tensor, got "
                            f"{getattr(y, 'dtype', type(y).__name__)} of shape {tuple(getattr(y, 'shape', ()))}")
    tgt_in = pad_batch([torch.cat([y.new_full((1,), bos), y]) for y in targets], pad_value=pad)
    tgt_out = pad_batch([torch.cat([y, y.new_full((1,), eos)]) for y in targets], pad_value=pad)
    return tgt_in.padded, tgt_out.padded, tgt_out.mask  # (B, T) each


class Seq2SeqBatch(NamedTuple):
    """A collated batch; ``tgt_in[:, 1:] == tgt_out[:, :-1]`` at real positions.

    src (B, S) int64, PAD after each source; src_lengths (B,) int64; src_mask (B, S) bool;
    tgt_in (B, T) BOS then the target; tgt_out (B, T) the target then EOS; tgt_mask (B, T) bool.
    """
    src: Tensor
    src_lengths: Tensor
    src_mask: Tensor
    tgt_in: Tensor
    tgt_out: Tensor
    tgt_mask: Tensor

    def to(self, device) -> "Seq2SeqBatch":
        return Seq2SeqBatch(*(t.to(device) for t in self))


def collate(pairs: Sequence[Pair], device=None) -> Seq2SeqBatch:
    """Pad a list of (source, target) pairs into a :class:`Seq2SeqBatch` (sources
    must have at least one token: an empty source has no encoder state)."""
    check_reference_allowed("data.seq2seq.collate")
    if not pairs:
        raise ValueError("pairs is empty: a batch needs at least one pair")
    sources = [p[0] for p in pairs]
    for b, s in enumerate(sources):
        if not isinstance(s, Tensor) or s.dim() != 1 or s.shape[0] == 0:
            raise ValueError(f"pairs[{b}][0] (a source) must be a non-empty 1-D tensor of ids")
    src = pad_batch(sources, pad_value=PAD)
    tgt_in, tgt_out, tgt_mask = decoder_inputs_targets([p[1] for p in pairs])
    batch = Seq2SeqBatch(src.padded, src.lengths, src.mask, tgt_in, tgt_out, tgt_mask)
    return batch if device is None else batch.to(device)


def batches(pairs: Sequence[Pair], batch_size: int, shuffle: bool = True, generator=None,
            device=None) -> List[Seq2SeqBatch]:
    """One epoch of collated batches (the last may be smaller), shuffled with ``generator``."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = (torch.randperm(len(pairs), generator=generator_of(0 if generator is None else generator))
             if shuffle else torch.arange(len(pairs))).tolist()
    return [collate([pairs[i] for i in order[k:k + batch_size]], device)
            for k in range(0, len(order), batch_size)]
