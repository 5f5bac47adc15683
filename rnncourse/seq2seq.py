r"""Encoder-decoder (sequence-to-sequence) models on the package's own recurrent
layers (:class:`rnncourse.LSTM`, :class:`rnncourse.GRU`): lessons 09 and 10.

Shape legend: ``B`` batch, ``S`` source length (padded), ``T`` target length
(padded, BOS or EOS included), ``E`` embedding size, ``H`` hidden size, ``D``
directions (2 if bidirectional), ``L`` layers, ``V`` vocabulary, ``Hm`` the
size of one memory vector (``D*H`` of the encoder).

The encoder reads the source :math:`x_1 \dots x_S` and returns its states
(the *memory*) and its final state; without attention the final state is all
the decoder ever learns about the source, one vector per layer (the
*bottleneck*):

.. math::
    m_s = [\overrightarrow{h}_s ; \overleftarrow{h}_s], \qquad
    s_0 = [\overrightarrow{h}_{S_b} ; \overleftarrow{h}_{1}]

The decoder runs a recurrent layer over the previous target tokens and
predicts the next one:

.. math::
    s_t = \mathrm{RNN}(e(y_{t-1}), s_{t-1}), \qquad
    p(y_t \mid y_{<t}, x) = \operatorname{softmax}(W_o s_t + b_o)

What is masked: the encoder skips each source's padding (its layers run on
``lengths``, as packed sequences), so the backward direction starts at each
source's last real token and the final state is the state there; memory rows
past a source's length are 0 and ``memory_mask`` (B, S) is False there. The
decoder's padded target positions produce logits that the loss masks
(:func:`rnncourse.masking.masked_cross_entropy` with ``tgt_mask``).

The decoder protocol (what :class:`Seq2Seq` and the decoding functions of
:mod:`rnncourse.decoding` use), shared with the attention decoder of lesson 10:

* ``init_state(encoder_state) -> state``
* ``step(y_prev (B,) int64, state, memory (B, S, Hm), memory_mask (B, S) bool)
  -> (logits (B, V), state, weights (B, S) or None)``
* ``reorder_state(state, index (N,) int64) -> state`` (rows of the batch)
* ``forward(tgt_in (B, T), state, memory, memory_mask) -> (logits (B, T, V),
  state, weights (B, T, S) or None)``: teacher forcing, equal to stepping.

Pitfalls: the decoder's hidden size must equal ``D*H`` of the encoder (the
directions are concatenated, not summed); an LSTM state is the pair (h, c),
and beam search must reorder both.
"""
from __future__ import annotations

from typing import Any, Optional

import torch
from torch import Tensor, nn

from .data.seq2seq import BOS, EOS, PAD
from .decoding import Decoded, beam_search, greedy_decode
from .masking import lengths_to_mask, masked_cross_entropy
from .recurrent import GRU, LSTM
from .validation import ShapeError, check_shape, check_tensor

__all__ = ["Encoder", "DecoderBase", "Decoder", "Seq2Seq", "Decoded", "greedy_decode", "beam_search"]

_KINDS = {"GRU": GRU, "LSTM": LSTM}


def _rnn_class(kind: str):
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {sorted(_KINDS)}, got {kind!r}")
    return _KINDS[kind]


def _tokens(name: str, x: Tensor, dims: int) -> None:
    check_tensor(name, x)
    if x.dim() != dims or x.is_floating_point() or x.dtype == torch.bool:
        legend = "(B,)" if dims == 1 else "(B, T)"
        raise ShapeError(f"{name} must be an integer tensor of shape {legend}, got "
                         f"{x.dtype} of shape {tuple(x.shape)}")


def map_state(fn, state):
    """Apply ``fn`` to every tensor of a state (a tensor or nested tuples/lists)."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_state(fn, s) for s in state)
    raise TypeError(f"a state must be a tensor or a tuple of tensors, got {type(state).__name__}")


class Encoder(nn.Module):
    r"""Embedding + :class:`rnncourse.GRU` or :class:`rnncourse.LSTM` over a padded batch.

    ``Encoder(vocab_size, embed_size, hidden_size, kind="GRU", num_layers=1,
    bidirectional=False, dropout=0.0)``; ``forward(src (B, S), lengths (B,))``
    returns ``memory (B, S, D*H)`` (0 past each length) and the final state with
    both directions concatenated per layer: ``(L, B, D*H)`` for a GRU, a pair of
    them for an LSTM. ``output_size`` is ``D*H``.
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, kind: str = "GRU",
                 num_layers: int = 1, bidirectional: bool = False, dropout: float = 0.0,
                 device=None, dtype=None):
        super().__init__()
        self.kind = kind
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD, device=device, dtype=dtype)
        self.rnn = _rnn_class(kind)(embed_size, hidden_size, num_layers, batch_first=True,
                                    dropout=dropout, bidirectional=bidirectional,
                                    device=device, dtype=dtype)
        self.output_size = hidden_size * (2 if bidirectional else 1)

    def forward(self, src: Tensor, lengths: Tensor):
        _tokens("src", src, 2)
        B, S = src.shape
        check_tensor("lengths", lengths)
        check_shape("lengths", lengths, (B,), "(B,)")
        memory, state = self.rnn(self.embedding(src), lengths=lengths)  # (B, S, D*H)
        L, D, H = self.rnn.num_layers, self.rnn.num_directions, self.rnn.hidden_size

        def join(s: Tensor) -> Tensor:  # (L*D, B, H) -> (L, B, D*H): directions side by side
            return s.view(L, D, B, H).permute(0, 2, 1, 3).reshape(L, B, D * H)

        return memory, map_state(join, state)


class DecoderBase(nn.Module):
    """The decoder protocol (see the module docstring) with generic defaults:
    ``init_state`` passes the encoder's state on, ``reorder_state`` selects rows
    on axis 1 of every tensor ((L, B, H) states), ``forward`` loops ``step``."""

    def init_state(self, encoder_state):
        return encoder_state

    def reorder_state(self, state, index: Tensor):
        return map_state(lambda s: s.index_select(1, index), state)

    def step(self, y_prev: Tensor, state, memory: Tensor, memory_mask: Tensor):
        raise NotImplementedError

    def forward(self, tgt_in: Tensor, state, memory: Tensor, memory_mask: Tensor):
        _tokens("tgt_in", tgt_in, 2)
        logits, weights = [], []
        for y in tgt_in.unbind(1):  # (B,) each
            z, state, w = self.step(y, state, memory, memory_mask)
            logits.append(z)
            weights.append(w)
        stacked = None if weights[0] is None else torch.stack(weights, dim=1)  # (B, T, S)
        return torch.stack(logits, dim=1), state, stacked  # (B, T, V)


class Decoder(DecoderBase):
    r"""A decoder without attention: :math:`s_t = \mathrm{RNN}(e(y_{t-1}), s_{t-1})`,
    logits :math:`W_o s_t + b_o` from the top layer. It never reads ``memory``
    (it takes it only to share the protocol): the source reaches it through the
    initial state alone. ``step`` returns ``weights = None``.

    ``Decoder(vocab_size, embed_size, hidden_size, kind="GRU", num_layers=1, dropout=0.0)``
    """

    def __init__(self, vocab_size: int, embed_size: int, hidden_size: int, kind: str = "GRU",
                 num_layers: int = 1, dropout: float = 0.0, device=None, dtype=None):
        super().__init__()
        self.kind = kind
        self.hidden_size, self.num_layers = hidden_size, num_layers
        self.embedding = nn.Embedding(vocab_size, embed_size, padding_idx=PAD, device=device, dtype=dtype)
        self.rnn = _rnn_class(kind)(embed_size, hidden_size, num_layers, batch_first=True,
                                    dropout=dropout, device=device, dtype=dtype)
        self.out = nn.Linear(hidden_size, vocab_size, device=device, dtype=dtype)

    def init_state(self, encoder_state):
        h = encoder_state[0] if isinstance(encoder_state, tuple) else encoder_state
        if (self.kind == "LSTM") != isinstance(encoder_state, tuple):
            raise TypeError(f"a {self.kind} decoder needs a "
                            f"{'(h, c) pair' if self.kind == 'LSTM' else 'single tensor h'} "
                            "from the encoder: use the same kind for both")
        if h.dim() != 3 or h.shape[0] != self.num_layers or h.shape[2] != self.hidden_size:
            raise ShapeError(f"the encoder's state has shape {tuple(h.shape)} but this decoder needs "
                             f"(L, B, H) = ({self.num_layers}, B, {self.hidden_size}): give the "
                             "decoder the encoder's layers and D*H (directions concatenated)")
        return encoder_state

    def step(self, y_prev: Tensor, state, memory: Optional[Tensor] = None,
             memory_mask: Optional[Tensor] = None):
        _tokens("y_prev", y_prev, 1)
        out, state = self.rnn(self.embedding(y_prev).unsqueeze(1), state)  # (B, 1, H)
        return self.out(out.squeeze(1)), state, None  # (B, V)

    def forward(self, tgt_in: Tensor, state, memory: Optional[Tensor] = None,
                memory_mask: Optional[Tensor] = None):
        # All T steps in one call of the recurrent layer: the same equations as
        # stepping (tested), one input projection for the whole sequence.
        _tokens("tgt_in", tgt_in, 2)
        out, state = self.rnn(self.embedding(tgt_in), state)  # (B, T, H)
        return self.out(out), state, None  # (B, T, V)


class Seq2Seq(nn.Module):
    r"""An encoder and a decoder that follows the protocol (module docstring).

    * ``forward(src, src_lengths, tgt_in, teacher_forcing=1.0)``: logits (B, T, V).
      With ``teacher_forcing = 1`` the decoder reads the true previous tokens
      ``tgt_in``; with ``p < 1`` each row at each step reads the true token with
      probability ``p`` and its own previous argmax otherwise (``0``: free
      running, the conditions of generation; *scheduled sampling* in between).
      Gradients do not flow through the argmax.
    * ``loss(batch)``: masked cross-entropy of a :class:`~rnncourse.data.seq2seq.Seq2SeqBatch`.
    * ``greedy(src, src_lengths, max_len)`` and ``beam_search(src, src_lengths,
      beam_width, max_len, alpha=1.0)``: :class:`~rnncourse.decoding.Decoded`;
      ``greedy`` also returns the attention weights (B, L, S) when the decoder has them.
    """

    def __init__(self, encoder: nn.Module, decoder: DecoderBase, bos: int = BOS, eos: int = EOS,
                 pad: int = PAD):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.bos, self.eos, self.pad = bos, eos, pad

    def encode(self, src: Tensor, src_lengths: Tensor):
        """memory (B, S, Hm), memory_mask (B, S), the decoder's initial state."""
        memory, enc_state = self.encoder(src, src_lengths)
        mask = lengths_to_mask(src_lengths.to(src.device), src.shape[1])  # (B, S)
        return memory, mask, self.decoder.init_state(enc_state)

    def forward(self, src: Tensor, src_lengths: Tensor, tgt_in: Tensor,
                teacher_forcing: float = 1.0, generator: Optional[torch.Generator] = None) -> Tensor:
        _tokens("tgt_in", tgt_in, 2)
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ValueError(f"teacher_forcing must be a probability in [0, 1], got {teacher_forcing}")
        memory, mask, state = self.encode(src, src_lengths)
        if teacher_forcing == 1.0:
            return self.decoder(tgt_in, state, memory, mask)[0]  # (B, T, V)
        logits = []
        y = tgt_in[:, 0]  # (B,) BOS
        for t in range(tgt_in.shape[1]):
            z, state, _ = self.decoder.step(y, state, memory, mask)
            logits.append(z)
            if t + 1 < tgt_in.shape[1]:
                guess = z.detach().argmax(-1)  # (B,)
                coin = torch.rand(guess.shape, generator=generator).to(guess.device)
                y = torch.where(coin < teacher_forcing, tgt_in[:, t + 1], guess)
        return torch.stack(logits, dim=1)  # (B, T, V)

    def loss(self, batch, teacher_forcing: float = 1.0) -> Tensor:
        logits = self(batch.src, batch.src_lengths, batch.tgt_in, teacher_forcing)
        return masked_cross_entropy(logits, batch.tgt_out, batch.tgt_mask)

    def _step(self, memory: Tensor, mask: Tensor, weights: Optional[list] = None):
        def step(y, state):
            z, state, w = self.decoder.step(y, state, memory, mask)
            if weights is not None and w is not None:
                weights.append(w)
            return z, state
        return step

    @torch.no_grad()
    def greedy(self, src: Tensor, src_lengths: Tensor, max_len: int):
        """(Decoded, weights (B, L, S) or None): see :func:`rnncourse.decoding.greedy_decode`."""
        memory, mask, state = self.encode(src, src_lengths)
        weights: list = []
        out = greedy_decode(self._step(memory, mask, weights), state, src.shape[0], max_len,
                            bos=self.bos, eos=self.eos, pad=self.pad, device=src.device)
        return out, (torch.stack(weights, dim=1) if weights else None)

    @torch.no_grad()
    def beam_search(self, src: Tensor, src_lengths: Tensor, beam_width: int, max_len: int,
                    alpha: float = 1.0) -> Decoded:
        """See :func:`rnncourse.decoding.beam_search`; memory and mask travel in the state."""
        memory, mask, state = self.encode(src, src_lengths)

        def step(y, st):
            z, dec, _ = self.decoder.step(y, st[0], st[1], st[2])
            return z, (dec, st[1], st[2])

        def reorder(st: Any, index: Tensor):
            return (self.decoder.reorder_state(st[0], index),
                    st[1].index_select(0, index), st[2].index_select(0, index))

        return beam_search(step, (state, memory, mask), reorder, src.shape[0], beam_width, max_len,
                           alpha=alpha, bos=self.bos, eos=self.eos, pad=self.pad, device=src.device)
