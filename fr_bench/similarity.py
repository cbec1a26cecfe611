"""The score registry: how two embeddings are compared is a named score function (``cosine`` by default).

Every protocol asks this registry for its comparison (``-c score=NAME``; the group ``"score"`` of
``protocol.conventions``), so a model can bring its own similarity (GroupFace's group-aware score) by registering
it::

    from fr_bench.similarity import register_score

    @register_score("my-score", description="...")
    def my_score(a, b):          # a, b: (n, D) prepared feature rows, row i of a against row i of b
        return ...               # (n,) float scores, higher = more alike

A :class:`ScoreFunction` compares *feature matrices*: rows may hold extra columns a model appends (a group
assignment, a quality value) and the function decides what to do with them. It has three parts:

* ``prepare(x)``: a per-row transform applied once to every feature matrix (cosine: L2 normalisation);
* ``rows(a, b)``: scores of aligned rows of two prepared matrices (``(n, D), (n, D) -> (n,)``);
* ``matrix(a, b)``: every row of ``a`` against every row of ``b`` (``(n, D), (m, D) -> (n, m)``); by default built
  from ``rows``.

``cosine_of_prepared`` says that the score equals the cosine similarity of the prepared rows (true for cosine):
identification metrics, which search galleries by cosine (:mod:`fr_bench.metrics.identification`), accept only such
scores.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

__all__ = ["DEFAULT_SCORE", "ScoreFunction", "get_score", "list_scores", "register_score"]

#: The score every protocol uses unless told otherwise.
DEFAULT_SCORE = "cosine"

Rows = Callable[[np.ndarray, np.ndarray], np.ndarray]


def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _matrix_from_rows(rows: Rows) -> Rows:
    def matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        n, m = len(a), len(b)
        return np.asarray(rows(np.repeat(a, m, axis=0), np.tile(b, (n, 1)))).reshape(n, m)

    return matrix


@dataclass(frozen=True)
class ScoreFunction:
    """A named way to compare two feature matrices (see the module docstring)."""

    name: str
    rows: Rows
    matrix: Rows
    prepare: Callable[[np.ndarray], np.ndarray] = _identity
    description: str = ""
    cosine_of_prepared: bool = False

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scores of aligned raw feature rows: ``rows(prepare(a), prepare(b))``."""
        return np.asarray(self.rows(self.prepare(a), self.prepare(b)))

    def all_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Every raw row of ``a`` against every raw row of ``b``: ``matrix(prepare(a), prepare(b))``."""
        return np.asarray(self.matrix(self.prepare(a), self.prepare(b)))


_REGISTRY: dict[str, ScoreFunction] = {}


def register_score(name: str, *, description: str, matrix: Rows | None = None,
                   prepare: Callable[[np.ndarray], np.ndarray] | None = None, cosine_of_prepared: bool = False,
                   replace: bool = False) -> Callable[[Rows], Rows]:
    """Decorator registering ``rows(a, b)`` as score ``name`` (see :class:`ScoreFunction` for the parts).

    A name already taken raises ``ValueError`` unless ``replace=True``.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"a score needs a non-empty name, got {name!r}")

    def decorate(rows: Rows) -> Rows:
        if name in _REGISTRY and not replace:
            raise ValueError(f"score {name!r} is already registered; pass replace=True to replace it")
        _REGISTRY[name] = ScoreFunction(name, rows, matrix or _matrix_from_rows(rows), prepare or _identity,
                                        description, cosine_of_prepared)
        return rows

    return decorate


def get_score(name: str | None = None) -> ScoreFunction:
    """The registered score ``name`` (default :data:`DEFAULT_SCORE`); an unknown name raises ``ValueError``
    listing the registered ones."""
    name = DEFAULT_SCORE if name is None else name
    if name not in _REGISTRY:
        raise ValueError(f"unknown score {name!r}; registered scores: {', '.join(list_scores())}")
    return _REGISTRY[name]


def list_scores() -> list[str]:
    """Names of the registered scores, the default first."""
    return sorted(_REGISTRY, key=lambda n: (n != DEFAULT_SCORE, n))


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows of ``x`` divided by their L2 norm (float arrays keep their dtype; others become float64). A zero row
    stays zero (its scores are 0), so callers that must refuse zero rows check before."""
    x = np.asarray(x)
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.where(norm > 0, norm, 1).astype(x.dtype)


@register_score("cosine", description="cosine similarity: dot product of the L2-normalised feature rows",
                matrix=lambda a, b: a @ b.T, prepare=l2_normalise, cosine_of_prepared=True)
def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)
