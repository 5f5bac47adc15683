r"""Character corpora for lesson 08: a synthetic source with a known entropy rate,
and the course's own prose.

**The synthetic source** (:func:`markov_source`) is a random Markov chain of order
``k`` over a small alphabet of letters and a space: each context of ``k``
characters allows a few letters after it, and the chance of a space (ending a
word) grows with the length of the current word, so samples read as words. Its
entropy rate is known exactly:

.. math::
    H = \sum_{c} \pi(c) \, H\big(P(\cdot \mid c)\big)
      = -\sum_{c} \pi(c) \sum_{a} P(a \mid c) \log_2 P(a \mid c)
    \quad\text{bits per character,}

with :math:`\pi` the stationary distribution over contexts (solved, not
estimated). No model of the stream can have a lower expected cross-entropy, so a
trained model's bits per character can be put next to the limit itself.

**The course's prose** (:func:`course_prose`) is the markdown of the solution
notebooks (written answers left out), so the corpus needs no download, has no
licence question, and grows with the course. In a source checkout it is read
from ``solutions/``; an installed wheel has no ``solutions/``, so a snapshot,
``data/language_model/prose.txt`` (written by ``python -m
rnncourse.experiments.language_model``), is read instead, and
:func:`course_prose` says which it used.

Both are split into training and validation text by contiguous blocks
(:func:`split_blocks`), never by shuffled characters: a character's neighbours
would otherwise sit in the other split and the validation score would flatter.
"""
from __future__ import annotations

import json
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from rnncourse.data.stream import generator_of
from rnncourse.paths import PACKAGE_DIR, data_dir

LETTERS = "abcdefgh"
SPACE = " "
PROSE_FILE = "prose.txt"
REGENERATE_PROSE = "python -m rnncourse.experiments.language_model --only prose"


# ----------------------------------------------------------------------------
# vocabularies

@dataclass(frozen=True)
class Vocab:
    """Characters <-> integer ids, in sorted order (id i is ``chars[i]``)."""
    chars: str

    @classmethod
    def of(cls, text: str) -> "Vocab":
        return cls("".join(sorted(set(text))))

    def __len__(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """(N,) int64 ids; KeyError naming the first character not in the vocabulary."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return torch.tensor([index[c] for c in text], dtype=torch.long)
        except KeyError as e:
            raise KeyError(f"character {e.args[0]!r} is not in the vocabulary {self.chars!r}") from None

    def decode(self, ids) -> str:
        return "".join(self.chars[int(i)] for i in ids)


# ----------------------------------------------------------------------------
# the synthetic source

@dataclass(frozen=True)
class MarkovSource:
    """A Markov chain of order ``order`` over ``alphabet``.

    ``probs[c, a]`` is P(next = a | context c), with the context's characters read
    as the digits of ``c`` in base S = len(alphabet), oldest first: (S**order, S), float64.
    """
    alphabet: str
    order: int
    probs: Tensor

    @property
    def vocab(self) -> Vocab:
        return Vocab(self.alphabet)

    def _next_context(self) -> Tensor:
        """(S**k, S): the context after appending character a to context c."""
        S, k = len(self.alphabet), self.order
        c = torch.arange(S ** k).unsqueeze(1)  # (C, 1)
        return (c * S) % (S ** k) + torch.arange(S)  # drop the oldest digit, append a

    def stationary(self) -> Tensor:
        r"""(S**k,) float64: :math:`\pi` with :math:`\pi M = \pi`, solved as a linear system."""
        C = self.probs.shape[0]
        M = torch.zeros(C, C, dtype=torch.float64)
        M.scatter_add_(1, self._next_context(), self.probs)  # context -> context transitions
        # (M^T - I) pi = 0 with sum(pi) = 1: replace one equation by the normalisation
        A = M.T - torch.eye(C, dtype=torch.float64)
        A[-1] = 1.0
        b = torch.zeros(C, dtype=torch.float64)
        b[-1] = 1.0
        pi = torch.linalg.solve(A, b)
        return pi.clamp_min(0) / pi.clamp_min(0).sum()

    def entropy_rate(self) -> float:
        """The exact entropy rate in bits per character (the module docstring's formula)."""
        p = self.probs
        h = -(p * torch.where(p > 0, p.log2(), torch.zeros_like(p))).sum(1)  # (C,) bits per context
        return float(self.stationary() @ h)

    def sample(self, n: int, generator=0, chains: int = 64) -> Tensor:
        """(n,) int64 ids: ``chains`` independent runs of the chain, each started from
        the stationary distribution (so every character is distributed as in the long
        run), joined end to end (one seam per ``n / chains`` characters, where the
        context does not predict the next character)."""
        gen = generator_of(generator)
        S, k = len(self.alphabet), self.order
        chains = max(1, min(chains, n))
        steps = -(-n // chains)
        ctx = torch.multinomial(self.stationary(), chains, replacement=True, generator=gen)  # (chains,)
        cdf = self.probs.cumsum(1)  # (C, S)
        cdf[:, -1] = 1.0 + 1e-12  # no draw can fall past the last character
        nxt = self._next_context()
        out = torch.empty(chains, steps, dtype=torch.long)
        u = torch.rand(chains, steps, generator=gen, dtype=torch.float64)
        for t in range(steps):  # inverse CDF, all chains at once
            a = torch.searchsorted(cdf[ctx], u[:, t:t + 1].contiguous(), right=True).squeeze(1)  # (chains,)
            out[:, t] = a
            ctx = nxt[ctx, a]
        return out.reshape(-1)[:n]

    def cross_entropy(self, ids: Tensor) -> float:
        """Bits per character of the true chain on ``ids`` (from the (k+1)-th character on):
        a sample estimate of :meth:`entropy_rate`."""
        S, k = len(self.alphabet), self.order
        ids = ids.long().cpu()
        ctx = torch.zeros(ids.numel() - k, dtype=torch.long)
        for j in range(k):
            ctx = ctx * S + ids[j:ids.numel() - k + j]
        p = self.probs[ctx, ids[k:]]
        return float(-p.log2().mean())


def markov_source(order: int = 3, letters: str = LETTERS, successors: int = 3,
                  floor: float = 0.01, seed: int = 0) -> MarkovSource:
    """A random order-``order`` chain with word-like structure.

    Each context allows ``successors`` letters (Dirichlet(1) weights), plus a space
    whose probability is 0 right after a space and rises with the current word's
    length (0.1 + 0.2 per letter already in the word, within the context); every
    character also gets ``floor / S`` of the mass, so the chain is irreducible,
    its stationary distribution unique, and no character sequence impossible.
    """
    if order < 1:
        raise ValueError(f"order must be at least 1, got {order}")
    if not 1 <= successors <= len(letters):
        raise ValueError(f"successors must lie in [1, {len(letters)}], got {successors}")
    gen = torch.Generator().manual_seed(seed)
    alphabet = SPACE + letters  # sorted: the space comes first
    S, L = len(alphabet), len(letters)
    probs = torch.zeros(S ** order, S, dtype=torch.float64)
    for c in range(S ** order):
        digits = [(c // S ** (order - 1 - j)) % S for j in range(order)]  # oldest first
        word = 0  # letters since the last space, as far as the context can see
        for d in reversed(digits):
            if d == 0:
                break
            word += 1
        p_space = 0.0 if digits[-1] == 0 else min(0.1 + 0.2 * word, 0.9)
        chosen = torch.randperm(L, generator=gen)[:successors] + 1
        w = -torch.rand(successors, generator=gen, dtype=torch.float64).log()  # Dirichlet(1)
        row = torch.zeros(S, dtype=torch.float64)
        row[chosen] = w / w.sum() * (1 - p_space)
        row[0] = p_space
        probs[c] = (1 - floor) * row + floor / S  # every transition possible, so chains join anywhere
    return MarkovSource(alphabet, order, probs)


# ----------------------------------------------------------------------------
# the course's prose

def _clean(text: str) -> str:
    """ASCII only (accents and symbols folded or dropped), tabs as spaces: a small vocabulary."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    return folded.replace("\t", " ").replace("\r", "")


def _markdown_of(notebook: Path) -> list[str]:
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    texts = []
    for cell in cells:
        nbgrader = cell.get("metadata", {}).get("nbgrader", {})
        if cell.get("cell_type") != "markdown" or nbgrader.get("solution"):
            continue  # code, and written answers (the instructor's solutions), stay out
        source = cell["source"]
        texts.append("".join(source) if isinstance(source, list) else source)
    return texts


def solutions_dir() -> Path | None:
    """The checkout's ``solutions/`` folder, or None in an installed wheel."""
    folder = PACKAGE_DIR.parent / "solutions"
    return folder if folder.is_dir() and (PACKAGE_DIR.parent / "pyproject.toml").is_file() else None


def extract_prose(solutions: Path) -> str:
    """The markdown of every ``solutions/NN_topic/NN_topic.ipynb``, in lesson order,
    cells separated by a blank line, cleaned to ASCII."""
    notebooks = sorted(Path(solutions).glob("[0-9][0-9]_*/[0-9][0-9]_*.ipynb"))
    if not notebooks:
        raise FileNotFoundError(f"no lesson notebooks under {solutions}")
    return _clean("\n\n".join(t.strip() for nb in notebooks for t in _markdown_of(nb)) + "\n")


def prose_snapshot(path: Path | None = None) -> str:
    """The saved snapshot of the prose (what the saved prose model was trained on)."""
    file = Path(path) if path is not None else data_dir("language_model") / PROSE_FILE
    if not file.exists():
        raise FileNotFoundError(f"{file} is missing; regenerate it with `{REGENERATE_PROSE}`")
    return file.read_text(encoding="ascii")


def course_prose(source: str = "auto") -> tuple[str, str]:
    """(text, where): the course's prose and where it came from.

    ``source="auto"``: the live solutions/ when this is a checkout, else the snapshot;
    ``"solutions"`` or ``"snapshot"`` force one (FileNotFoundError if absent).
    """
    if source not in ("auto", "solutions", "snapshot"):
        raise ValueError(f"source must be 'auto', 'solutions' or 'snapshot', got {source!r}")
    folder = solutions_dir()
    if source == "solutions" or (source == "auto" and folder is not None):
        if folder is None:
            raise FileNotFoundError("no solutions/ folder: this is an installed copy of the course")
        return extract_prose(folder), f"the markdown of {folder}"
    return prose_snapshot(), "the snapshot data/language_model/prose.txt"


# ----------------------------------------------------------------------------
# splitting

def split_blocks(ids: Tensor, block: int = 2000, every: int = 10) -> tuple[Tensor, Tensor]:
    """(train, validation): cut ``ids`` (N,) into contiguous blocks of ``block``
    characters; every ``every``-th block (the 10th, 20th, ...) goes to validation,
    the rest, in order, to training. Validation text thus comes from all over the
    corpus but each of its blocks is unbroken."""
    if ids.dim() != 1:
        raise ValueError(f"ids must have shape (N,), got {tuple(ids.shape)}")
    if block < 2 or every < 2:
        raise ValueError(f"block and every must be at least 2, got {block} and {every}")
    blocks = list(ids.split(block))
    val = [b for i, b in enumerate(blocks) if i % every == every - 1]
    train = [b for i, b in enumerate(blocks) if i % every != every - 1]
    if not val:
        raise ValueError(f"{ids.numel()} characters give no validation block of {block} "
                         f"(need at least {block * every})")
    return torch.cat(train), torch.cat(val)
