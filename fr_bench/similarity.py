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

A model's own score (the DESIGN rule "a model may bring" its comparison): a model whose feature rows carry more than
its embedding declares a :class:`FeatureLayout` (``Embedder.score``; GroupFace: rows ``[final embedding (D) | GDN
intermediate feature (I)]``, score ``group-aware``). While the runner evaluates such a model it activates the layout
(:func:`use_layout`); every score then sees it: ``cosine`` compares the embedding columns only (so ``-c score=cosine``
on a GroupFace model is its plain-cosine number) and ``group-aware`` reads both parts. Without an active layout,
rows are plain embeddings and ``group-aware`` refuses them (a clear error).
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DEFAULT_SCORE", "FeatureLayout", "ScoreFunction", "current_layout", "embedding_columns", "get_score",
           "list_scores", "model_conventions", "register_score", "score_applies", "use_layout"]

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
    #: True for a model's own score: it reads rows only through an active :class:`FeatureLayout` of its name.
    requires_layout: bool = False

    def pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Scores of aligned raw feature rows: ``rows(prepare(a), prepare(b))``."""
        return np.asarray(self.rows(self.prepare(a), self.prepare(b)))

    def all_pairs(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Every raw row of ``a`` against every raw row of ``b``: ``matrix(prepare(a), prepare(b))``."""
        return np.asarray(self.matrix(self.prepare(a), self.prepare(b)))


_REGISTRY: dict[str, ScoreFunction] = {}


def register_score(name: str, *, description: str, matrix: Rows | None = None,
                   prepare: Callable[[np.ndarray], np.ndarray] | None = None, cosine_of_prepared: bool = False,
                   requires_layout: bool = False, replace: bool = False) -> Callable[[Rows], Rows]:
    """Decorator registering ``rows(a, b)`` as score ``name`` (see :class:`ScoreFunction` for the parts).

    A name already taken raises ``ValueError`` unless ``replace=True``.
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"a score needs a non-empty name, got {name!r}")

    def decorate(rows: Rows) -> Rows:
        if name in _REGISTRY and not replace:
            raise ValueError(f"score {name!r} is already registered; pass replace=True to replace it")
        _REGISTRY[name] = ScoreFunction(name, rows, matrix or _matrix_from_rows(rows), prepare or _identity,
                                        description, cosine_of_prepared, requires_layout)
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


# ------------------------------------------------------------------------------------------- a model's own layout


@dataclass(frozen=True)
class FeatureLayout:
    """How a model's feature rows are laid out for its own score.

    Each row is ``blocks`` blocks (2 under the "concat" flip convention, else 1) of ``embedding_size`` embedding
    columns followed by ``extra_size`` columns the score ``score`` reads (GroupFace: the GDN intermediate feature);
    ``params`` are that score's constants (GroupFace: beta, gamma, distance); ``fused`` is how many views were
    summed into each row (2 under the "sum" flip convention), so a score can use their mean where a sum would change
    its scale (GroupFace's distance term).
    """

    score: str
    embedding_size: int
    extra_size: int
    params: Mapping[str, Any] = field(default_factory=dict)
    blocks: int = 1
    fused: int = 1

    @classmethod
    def from_declaration(cls, declared: Mapping[str, Any], flip: str = "none") -> FeatureLayout:
        """The layout of an ``Embedder.score`` declaration (``{"name", "embedding_size", "extra_size", **params}``)
        for features extracted under the flip convention ``flip``."""
        params = {k: v for k, v in declared.items() if k not in ("name", "embedding_size", "extra_size")}
        return cls(str(declared["name"]), int(declared["embedding_size"]), int(declared["extra_size"]), params,
                   blocks=2 if flip == "concat" else 1, fused=2 if flip == "sum" else 1)

    @property
    def width(self) -> int:
        """Columns of one row."""
        return self.blocks * (self.embedding_size + self.extra_size)

    def split(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(embedding columns, extra columns)`` of rows ``x`` (blocks side by side in each part)."""
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.width:
            raise ValueError(f"score {self.score!r}: feature rows have {x.shape[1:]} columns, the model's layout "
                             f"{self.width} ({self.blocks} x [{self.embedding_size} embedding | {self.extra_size} "
                             "extra])")
        step, d = self.embedding_size + self.extra_size, self.embedding_size
        blocks = [x[:, i * step:(i + 1) * step] for i in range(self.blocks)]
        if self.blocks == 1:
            return blocks[0][:, :d], blocks[0][:, d:]
        return np.concatenate([b[:, :d] for b in blocks], axis=1), np.concatenate([b[:, d:] for b in blocks], axis=1)


_LAYOUT: contextvars.ContextVar[FeatureLayout | None] = contextvars.ContextVar("fr_bench_feature_layout",
                                                                               default=None)


@contextlib.contextmanager
def use_layout(layout: FeatureLayout | None) -> Iterator[None]:
    """Within the block, every score reads feature rows by ``layout`` (None: plain embeddings)."""
    token = _LAYOUT.set(layout)
    try:
        yield
    finally:
        _LAYOUT.reset(token)


def current_layout() -> FeatureLayout | None:
    """The active :class:`FeatureLayout` (None: rows are plain embeddings)."""
    return _LAYOUT.get()


def score_applies(name: str) -> bool:
    """Whether score ``name`` can compare the rows of the model being evaluated (a model's own score needs its
    layout active; every other score applies to any rows)."""
    layout = current_layout()
    return not get_score(name).requires_layout or (layout is not None and layout.score == name)


def model_conventions(conventions: Mapping[str, Any] | None, declared: Mapping[str, Any] | None,
                      offered: list[str]) -> tuple[dict[str, Any], str | None]:
    """``conventions`` with the model's declared score (``Embedder.score``) as the ``score`` default when the user
    chose none; ``offered`` are the protocol's score conventions. Returns ``(conventions, flag)``: the flag says
    why the model's score was not used (a protocol that ranks galleries by cosine), else None."""
    out = dict(conventions or {})
    if declared is None or "score" in out or not offered:
        return out, None
    name = str(declared["name"])
    if name in offered:
        out["score"] = name
        return out, None
    return out, (f"score: the model's own score {name!r} does not apply to this protocol (it ranks by cosine); "
                 "cosine of the model's embedding columns used")


def embedding_columns(x: np.ndarray) -> np.ndarray:
    """The embedding columns of feature rows ``x`` under the active layout (``x`` itself when none is active): what
    cosine compares and feature norms measure."""
    layout = current_layout()
    return x if layout is None else layout.split(x)[0]


@register_score("cosine", description="cosine similarity: dot product of the L2-normalised embedding rows",
                matrix=lambda a, b: a @ b.T, prepare=lambda x: l2_normalise(embedding_columns(x)),
                cosine_of_prepared=True)
def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.einsum("ij,ij->i", a, b)


# --------------------------------------------------------------------------------------- GroupFace's group-aware

GROUP_AWARE = "group-aware"


def _group_layout() -> FeatureLayout:
    layout = current_layout()
    if layout is None or layout.score != GROUP_AWARE:
        have = "plain embeddings" if layout is None else f"the layout of score {layout.score!r}"
        raise ValueError(f"score {GROUP_AWARE!r} needs a model that declares it (a GroupFace checkpoint: rows "
                         f"[final embedding | GDN intermediate feature]); this model's features are {have}")
    return layout


def _group_prepare(x: np.ndarray) -> np.ndarray:
    """``[L2-normalised final embedding | intermediate feature (the mean of the fused views)]``."""
    layout = _group_layout()
    final, inter = layout.split(x)
    inter = np.asarray(inter, dtype=np.float64) / layout.fused
    return np.concatenate([l2_normalise(np.asarray(final, dtype=np.float64)), inter], axis=1)


def _group_parts(a: np.ndarray) -> tuple[np.ndarray, np.ndarray, FeatureLayout]:
    layout = _group_layout()
    d = layout.blocks * layout.embedding_size
    return a[:, :d], a[:, d:], layout


def _group_term(dist: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    beta, gamma = float(layout.params.get("beta", 0.1)), float(layout.params.get("gamma", 1.0 / 3.0))
    return beta * np.power(dist, gamma)


def _cosine_distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - l2_normalise(a) @ l2_normalise(b).T, 0.0, None)


def _group_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    from scipy.spatial.distance import cdist

    fa, ia, layout = _group_parts(a)
    fb, ib, _ = _group_parts(b)
    dist = _cosine_distance(ia, ib) if layout.params.get("distance", "euclidean") == "cosine" else cdist(ia, ib)
    return fa @ fb.T - _group_term(dist, layout)


@register_score(GROUP_AWARE, description="GroupFace's group-aware similarity: cosine of the final embeddings minus "
                "beta x D(intermediate features)^gamma (Kim et al., CVPR 2020)", matrix=_group_matrix,
                prepare=_group_prepare, requires_layout=True)
def _group_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    fa, ia, layout = _group_parts(a)
    fb, ib, _ = _group_parts(b)
    if layout.params.get("distance", "euclidean") == "cosine":
        dist = np.clip(1.0 - np.einsum("ij,ij->i", l2_normalise(ia), l2_normalise(ib)), 0.0, None)
    else:
        dist = np.linalg.norm(ia - ib, axis=1)
    return np.einsum("ij,ij->i", fa, fb) - _group_term(dist, layout)
