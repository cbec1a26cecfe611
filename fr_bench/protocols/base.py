"""The shared shapes of every protocol: the images to embed, and the result of evaluating their embeddings.

A protocol loader turns the files a user has on disk into

* ``protocol.images``: an :class:`ImageSource` -- the ordered list of images to embed, each with a stable key (used
  by the embedding cache's fingerprint) and a way to decode it as an aligned 112x112 RGB ``uint8`` crop;
* ``protocol.evaluate(embeddings, norms=None, ...)``: the protocol's official numbers, computed with
  :mod:`fr_bench.metrics` only, returned as a :class:`~fr_bench.results.ProtocolResult` (defined with the
  results store, re-exported here).

Loaders never import models; models never import protocols.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fr_bench.protocols.conventions import (
    FLIP_CONVENTIONS,
    FLIP_FEATURES,
    check_flip,
    choose_conventions,
    default_first,
)
from fr_bench.results.records import ProtocolResult
from fr_bench.similarity import get_score, list_scores

__all__ = ["CROP_SIZE", "ClusterItems", "ImageRef", "ImageSource", "Protocol", "ProtocolError", "ProtocolResult",
           "file_error", "landmarks_digest", "read_text_lines", "require_root", "text_records"]

#: Side of the aligned square crop every protocol delivers.
CROP_SIZE = 112


class ProtocolError(ValueError):
    """Bad or incomplete benchmark files. The message names the file, the line and what was expected."""


def file_error(path: Any, line: int | None, message: str) -> ProtocolError:
    """A :class:`ProtocolError` whose message starts with ``path:line:`` the way compilers print it."""
    where = f"{path}:{line}" if line is not None else f"{path}"
    return ProtocolError(f"{where}: {message}")


def require_root(root: Any, spec: Mapping[str, Any], *, folder: bool = False) -> Path:
    """``root`` as an existing Path (a folder when ``folder``), or an error saying what the protocol expects there."""
    name = spec.get("name", "protocol")
    if root is None:
        hint = spec.get("root_hint", "")
        raise ProtocolError(f"{name}: needs the benchmark files: pass --root DIR (root= in Python)"
                            + (f": {hint}" if hint else ""))
    path = Path(root).expanduser()
    if not path.exists():
        raise ProtocolError(f"{path}: {name} root not found")
    if folder and not path.is_dir():
        raise file_error(path, None, f"{name}: the root must be a folder ({spec.get('root_hint', '')})")
    return path


def read_text_lines(path: Path, what: str = "text file") -> list[str]:
    """The lines of a UTF-8 text file (a BOM is dropped); a byte that is not UTF-8 raises a :class:`ProtocolError`
    naming the file, the line and the byte."""
    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise file_error(path, line, f"{what} is not UTF-8 text (byte 0x{data[exc.start]:02x} at offset "
                         f"{exc.start}); save it as UTF-8") from None
    return [line.rstrip("\r") for line in text.split("\n")]


def text_records(path: Path, n_fields: int, layout: str, *, what: str, sep: str | None = None,
                 comments: bool = False):
    """``(line number, fields)`` for each non-blank line of a text list, with the checks every list needs.

    Raises :class:`ProtocolError` when the file is missing (``"<path>: <what> not found"``) and, naming the line,
    when a line is not UTF-8 text (:func:`read_text_lines`) or does not have ``n_fields`` fields (``layout`` says
    what was expected, e.g. ``'<index> <image>'``). ``sep=None`` splits on white space; ``comments`` skips lines
    starting with ``#``.
    """
    if not path.is_file():
        raise ProtocolError(f"{path}: {what} not found")
    for lineno, line in enumerate(read_text_lines(path, what), start=1):
        text = line.strip()
        if not text or (comments and text.startswith("#")):
            continue
        fields = text.split() if sep is None else [x.strip() for x in text.split(sep)]
        if len(fields) != n_fields:
            raise file_error(path, lineno, f"expected {layout} ({n_fields} fields), got {text!r}")
        yield lineno, fields


@dataclass(frozen=True)
class ImageRef:
    """One image of a protocol.

    ``key`` is stable across machines (a path relative to the benchmark root, or ``pack.bin#index``), so that the
    embedding cache recognises the same image list. ``source`` is where the bytes live (a file path or a ``.bin``
    pack), ``member`` the index inside a pack. ``landmarks`` (5x2, image coordinates, docs/FORMATS.md order) is set when
    the image must be warped to the 112x112 template; ``None`` means the image is already aligned.
    """

    key: str
    source: str
    member: int | None = None
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass
class ClusterItems:
    """What a protocol offers to cluster (``protocol.cluster_items``): one row per item (an image, or an IJB template).

    ``features``: L2-normalised rows (cosine similarity = dot product); ``labels``: the true identity of each item;
    ``keys``: a stable name per item (image key or template id); ``item_kind``: what an item is ("image",
    "template"). ``pair_scores``/``pair_labels``: cosine scores and
    genuine flags of the protocol's own verification pairs (what fixes the default clustering threshold), or None
    when it has none (``pairs_source`` then says why; else what the pairs are).
    """

    features: np.ndarray
    labels: np.ndarray
    keys: list[str]
    item_kind: str
    pair_scores: np.ndarray | None
    pair_labels: np.ndarray | None
    pairs_source: str

    def __post_init__(self) -> None:
        n = len(self.keys)
        if self.features.ndim != 2 or len(self.features) != n or len(self.labels) != n:
            raise ValueError(f"{n} item keys, {len(self.labels)} labels and features of shape {self.features.shape}")
        finite = np.isfinite(self.features).all(axis=1)
        bad = np.flatnonzero(~finite | (np.abs(np.where(finite[:, None], self.features, 0)).sum(axis=1) == 0))
        if bad.size:
            raise ValueError(f"{bad.size} item features are zero or not finite (e.g. {self.keys[bad[0]]}): they "
                             "cannot be clustered by cosine")


class ImageSource(ABC):
    """An ordered, lazily decoded list of images. Picklable, so DataLoader workers can decode in parallel."""

    #: Colour order of :meth:`load` output. Every loader returns RGB; models declare their own order.
    color_space: str = "RGB"

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def ref(self, i: int) -> ImageRef:
        """The :class:`ImageRef` of image ``i``."""

    @abstractmethod
    def load(self, i: int) -> np.ndarray:
        """Image ``i`` as an aligned ``CROP_SIZE x CROP_SIZE x 3`` ``uint8`` RGB array (decoded only now)."""

    def keys(self) -> list[str]:
        """Stable keys of all images, in order (the cache fingerprints this list)."""
        return [self.ref(i).key for i in range(len(self))]

    def recipe_digest(self) -> str:
        """sha256 of what, besides :meth:`keys`, decides the decoded crops: the alignment landmarks of every image.

        The embedding cache's identity includes it, so a new landmark file for the same image keys (another
        detector) never reuses the old crops' rows. Subclasses with columnar landmarks (or in-memory bytes) override
        it with a faster equivalent; this default walks :meth:`ref`.
        """
        n = len(self)
        points = [self.ref(i).landmarks for i in range(n)]
        if all(p is None for p in points):
            return landmarks_digest(None)
        # mixed: already-aligned rows as NaN
        points = [np.full((5, 2), np.nan) if p is None else p for p in points]
        return landmarks_digest(np.asarray(points, dtype=np.float64).reshape(n, 5, 2))

    def __getitem__(self, i: int) -> ImageRef:
        if not -len(self) <= i < len(self):
            raise IndexError(i)
        return self.ref(i % len(self))

    def __iter__(self):
        return (self.ref(i) for i in range(len(self)))


def landmarks_digest(landmarks: Any) -> str:
    """sha256 of an ``(N, 5, 2)`` landmark array as float64 (``None``: every image already aligned)."""
    if landmarks is None:
        return hashlib.sha256(b"aligned").hexdigest()
    arr = np.ascontiguousarray(np.asarray(landmarks, dtype=np.float64))
    return hashlib.sha256(f"landmarks{arr.shape}".encode() + arr.tobytes()).hexdigest()


class Protocol(ABC):
    """A benchmark protocol bound to the files under ``root``.

    Subclasses set ``name`` and ``spec`` (the parsed TOML spec), build ``images`` lazily-decodable, and implement
    :meth:`evaluate`. ``flip_convention`` is the protocol's default flip fusion (a name of
    :data:`~fr_bench.protocols.conventions.FLIP_CONVENTIONS`; the spec's ``[conventions] flip`` overrides the class
    default): the runner extracts with it unless told otherwise and passes the mode it used to ``evaluate`` as
    ``conventions["flip"]``. ``data_files`` lists the files that define the protocol (hashed for provenance).
    """

    name: str = ""
    flip_convention: str = "sum"
    #: True when the protocol's metrics search galleries by cosine (identification): only scores that are the
    #: cosine of their prepared rows (:attr:`fr_bench.similarity.ScoreFunction.cosine_of_prepared`) apply.
    needs_cosine_score: bool = False
    #: Why ``frbench evaluate`` cannot run this protocol (e.g. a clustering protocol: ``frbench cluster``), or None;
    #: the runner checks it before any extraction.
    not_evaluated: str | None = None

    def __init__(self, spec: Mapping[str, Any] | None = None) -> None:
        self.spec: dict[str, Any] = dict(spec or {})
        flip = self.spec.get("conventions", {}).get("flip")
        if flip is not None:
            where = f"{self.spec.get('spec_file', self.spec.get('name', 'protocol'))}: [conventions] flip"
            self.flip_convention = check_flip(str(flip), where)

    @property
    def flip_test(self) -> bool:
        """Read-only: whether the default flip convention embeds the mirror image too (``flip_convention``)."""
        return self.flip_convention != "none"

    def shared_conventions(self) -> dict[str, list[str]]:
        """The convention groups every protocol accepts, default first; subclasses add them to
        :attr:`conventions`: ``flip`` (how the extractor fused the mirror image) and ``score`` (the registered
        score functions of :mod:`fr_bench.similarity` this protocol can use)."""
        scores = [n for n in list_scores() if not self.needs_cosine_score or get_score(n).cosine_of_prepared]
        return {"flip": default_first(FLIP_CONVENTIONS, self.flip_convention), "score": scores}

    def spec_defaults(self, groups: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
        """``groups`` with the spec's ``[conventions]`` default of each moved first (a default the group does not
        accept, e.g. a k-fold accuracy on a set without folds, leaves the group's own order)."""
        defaults = self.spec.get("conventions", {})
        return {group: default_first(names, defaults.get(group)) for group, names in groups.items()}

    def describe_score(self, chosen: Mapping[str, str], of: str = "") -> str:
        """The text a result records about its scores (``details["score"]``): the score function, applied to
        what (``of``, e.g. "template features pooled from"), and the features the flip convention made."""
        score = get_score(chosen["score"])
        return f"{score.name} ({score.description}) of {of + ' ' if of else ''}{FLIP_FEATURES[chosen['flip']]}"

    def choose(self, conventions: Mapping[str, str] | None) -> dict[str, str]:
        """The named convention of every group of :attr:`conventions` (unknown groups or names raise)."""
        return choose_conventions(self.name or "protocol", self.conventions, conventions)

    @property
    @abstractmethod
    def images(self) -> ImageSource: ...

    def load_image(self, i: int) -> np.ndarray:
        """Image ``i`` as an aligned 112x112x3 ``uint8`` RGB crop."""
        return self.images.load(i)

    @property
    def data_files(self) -> Sequence[str]:
        """Files (or image-tree roots) whose content defines this protocol instance."""
        return []

    @property
    def conventions(self) -> dict[str, list[str]]:
        """Metric group -> the named conventions ``evaluate`` accepts for it (first is the default); subclasses add
        their own groups to :meth:`shared_conventions`."""
        return self.shared_conventions()

    @abstractmethod
    def evaluate(
        self,
        embeddings: np.ndarray,
        norms: np.ndarray | None = None,
        *,
        conventions: Mapping[str, str] | None = None,
        ci: float | None = None,
        n_boot: int = 1000,
        seed: int = 0,
    ) -> ProtocolResult:
        """The protocol's official numbers from ``embeddings`` (one row per image of :attr:`images`, in order).

        ``embeddings`` are the extractor's raw features (fused with the mirror image's as ``conventions["flip"]``
        says: the mode the extractor used), not normalised; ``norms`` their L2 norms if the caller already has them.
        ``conventions`` picks a named convention per metric group (see :attr:`conventions`); ``ci`` is a confidence
        level (e.g. 0.95) for bootstrap intervals, or None.
        """

    def cluster_items(self, embeddings: np.ndarray, norms: np.ndarray | None = None) -> ClusterItems:
        """The items ``frbench cluster`` clusters, with their identities (:class:`ClusterItems`). Protocols that know
        the identity of what they embed override it; the default raises."""
        raise ProtocolError(f"{self.name or 'protocol'}: has no identity labels to cluster against")

    def pair_qualities(self, image_quality: np.ndarray, *, how: str = "min",
                       skipped: np.ndarray | None = None) -> np.ndarray | None:
        """One pairwise quality per entry of ``result.scores.pairs`` (same order) from one quality per image of
        :attr:`images`, combined by :func:`fr_bench.metrics.pair_quality` (``how``); ``skipped`` marks images the
        extractor could not embed (protocols that drop their pairs drop them here too). ``None``: this protocol has
        no 1:1 verification pairs (the default; verification protocols override it)."""
        return None

    def check_embeddings(self, embeddings: np.ndarray) -> np.ndarray:
        """Validate the embedding matrix against the image list; returns it as a float32 2-D array."""
        emb = np.asarray(embeddings)
        if emb.ndim != 2 or emb.shape[0] != len(self.images):
            raise ValueError(
                f"{self.name}: expected embeddings of shape ({len(self.images)}, dim) -- one row per image of "
                f"protocol.images -- got {emb.shape}"
            )
        if not np.isfinite(emb).all():
            bad = int((~np.isfinite(emb)).any(axis=1).sum())
            raise ValueError(
                f"{self.name}: {bad} embedding rows contain NaN or inf (images skipped as undecodable leave such "
                "rows; this protocol needs every image -- fix or replace the files named by the extractor)"
            )
        return emb.astype(np.float32, copy=False)
