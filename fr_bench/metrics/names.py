"""The one vocabulary of metric names: how results name their numbers, and how to read a name back.

A name is ``[<prefix>/]<base>``. The prefix names a part of the protocol (an IJB 1:N gallery ``G1``, a K-FACE list
``Q1``); the base is one of:

=========================  ================================================  ===========
base                       meaning                                           rate?
=========================  ================================================  ===========
``accuracy``               pair accuracy (mean over folds)                   yes
``accuracy_std``           its spread over folds (``accuracy_sem``: s.e.)    yes
``tar@far=<f>``            TAR at a FAR target (1:1 verification)            yes
``eer``, ``auc``           equal error rate, area under the ROC              yes
``rank<k>``                closed-set identification rate at rank k          yes
``tpir@fpir=<f>``          open-set TPIR at an FPIR target (NIST 1:N)        yes
``merged_rate@far=<f>``    the merged-galleries 1:N shortcut's rate          yes
``xnorm``                  mean L2 norm of the embeddings                    no
``edc_fnm_pauc``           pAUC of the ISO FNM-EDC (quality, to 20% discard) no
``edc_fm_pauc``            pAUC of the ISO FM-EDC (quality, to 20% discard)  no
``bcubed_*``               BCubed precision, recall, F of a clustering       yes
``pairwise_*``             pairwise precision, recall, F of a clustering     yes
``nmi``                    normalised mutual information of a clustering     no
=========================  ================================================  ===========

Rates are stored as fractions and shown in percent. Targets are written by :func:`far_name` (``1e-4``, ``5e-3``,
``1.5e-4``); :func:`parse` reads any spelling back (``tar@far=0.0001`` is ``tar@far=1e-4``). Pure: imports nothing
of fr_bench, so every layer (metrics, protocols, reports, CLI, training) can share it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

__all__ = [
    "AT_KINDS",
    "MetricName",
    "PLAIN_NAMES",
    "at_name",
    "far_name",
    "is_rate",
    "parse",
    "rank_name",
    "same_metric",
    "sort_key",
    "split_prefix",
    "tar_name",
    "tpir_name",
]

#: Bases without a parameter, in table order, with whether each is a rate.
PLAIN_NAMES: dict[str, bool] = {
    "accuracy": True,
    "accuracy_std": True,
    "accuracy_sem": True,
    "eer": True,
    "auc": True,
    "xnorm": False,
    "edc_fnm_pauc": False,
    "edc_fm_pauc": False,
    "bcubed_f": True,
    "pairwise_f": True,
    "bcubed_precision": True,
    "bcubed_recall": True,
    "pairwise_precision": True,
    "pairwise_recall": True,
    "nmi": False,
}

#: Bases with an operating-point target (``<kind>=<target>``), in table order; all are rates.
AT_KINDS: tuple[str, ...] = ("tar@far", "tpir@fpir", "merged_rate@far")

_NUMBER = r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?"
_AT = re.compile(rf"^(?P<kind>{'|'.join(re.escape(k) for k in AT_KINDS)})=(?P<target>{_NUMBER})$")
_RANK = re.compile(r"^rank(?P<k>[1-9]\d*)$")
#: Position of each kind in tables: accuracy first, then TAR, EER/AUC, identification, the rest.
_ORDER = ("accuracy", "accuracy_std", "accuracy_sem", "tar@far", "eer", "auc", "rank", "tpir@fpir",
          "merged_rate@far", "xnorm", "edc_fnm_pauc", "edc_fm_pauc", "bcubed_f", "pairwise_f",
          "bcubed_precision", "bcubed_recall", "pairwise_precision", "pairwise_recall", "nmi")


@dataclass(frozen=True)
class MetricName:
    """A parsed metric name: ``prefix`` ("" when none), ``kind`` (``"accuracy"``, ``"tar@far"``, ``"rank"`` ...)
    and ``param`` (the target of an ``@`` name, ``k`` of ``rank<k>``, else ``None``)."""

    prefix: str
    kind: str
    param: float | int | None = None

    @property
    def base(self) -> str:
        """The name without its prefix, in the canonical spelling."""
        if self.kind in AT_KINDS:
            return at_name(self.kind, float(self.param))
        if self.kind == "rank":
            return rank_name(int(self.param))
        return self.kind

    @property
    def name(self) -> str:
        """The canonical full name (``G1/tpir@fpir=1e-2``)."""
        return f"{self.prefix}/{self.base}" if self.prefix else self.base

    @property
    def is_rate(self) -> bool:
        """Whether the number is a fraction shown in percent."""
        return PLAIN_NAMES.get(self.kind, True)


def far_name(far: float) -> str:
    """A target rate as written in metric names: ``1e-3`` -> ``"1e-3"``, ``0.005`` -> ``"5e-3"``,
    ``1.5e-4`` -> ``"1.5e-4"`` (the shortest exact mantissa: two targets never share a name)."""
    value = float(far)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"a target rate must be a finite number >= 0, got {far!r}")
    if value == 0:
        return "0"
    mantissa, exponent = f"{value:.15e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def at_name(kind: str, target: float) -> str:
    """``at_name("tar@far", 1e-4)`` -> ``"tar@far=1e-4"`` (``kind`` one of :data:`AT_KINDS`)."""
    if kind not in AT_KINDS:
        raise ValueError(f"unknown operating-point metric {kind!r}; known: {', '.join(AT_KINDS)}")
    return f"{kind}={far_name(target)}"


def tar_name(far: float, prefix: str = "") -> str:
    """``tar_name(1e-4)`` -> ``"tar@far=1e-4"``; with ``prefix="Q1"``: ``"Q1/tar@far=1e-4"``."""
    return _join(prefix, at_name("tar@far", far))


def tpir_name(fpir: float, prefix: str = "") -> str:
    """``tpir_name(1e-2, "G1")`` -> ``"G1/tpir@fpir=1e-2"``."""
    return _join(prefix, at_name("tpir@fpir", fpir))


def rank_name(k: int, prefix: str = "") -> str:
    """``rank_name(1)`` -> ``"rank1"``."""
    if int(k) != k or k < 1:
        raise ValueError(f"rank must be an integer >= 1, got {k!r}")
    return _join(prefix, f"rank{int(k)}")


def _join(prefix: str, base: str) -> str:
    return f"{prefix}/{base}" if prefix else base


def split_prefix(name: str) -> tuple[str, str]:
    """``"G1/tpir@fpir=1e-2"`` -> ``("G1", "tpir@fpir=1e-2")``; ``"rank1"`` -> ``("", "rank1")``."""
    prefix, sep, base = str(name).rpartition("/")
    return (prefix, base) if sep else ("", base)


def parse(name: str) -> MetricName | None:
    """The :class:`MetricName` of ``name``, or ``None`` when ``name`` is not in the vocabulary."""
    prefix, base = split_prefix(name)
    if base in PLAIN_NAMES:
        return MetricName(prefix, base)
    m = _AT.match(base)
    if m is not None:
        target = float(m["target"])
        return MetricName(prefix, m["kind"], target) if math.isfinite(target) and target >= 0 else None
    m = _RANK.match(base)
    if m is not None:
        return MetricName(prefix, "rank", int(m["k"]))
    return None


def is_rate(name: str) -> bool:
    """Whether the metric ``name`` is a fraction shown in percent (any prefix); ``False`` for unknown names."""
    parsed = parse(name)
    return parsed is not None and parsed.is_rate


def same_metric(a: str, b: str) -> bool:
    """Whether two names denote one number (``tar@far=1e-4`` and ``tar@far=0.0001``)."""
    if a == b:
        return True
    pa, pb = parse(a), parse(b)
    if pa is None or pb is None or (pa.prefix, pa.kind) != (pb.prefix, pb.kind):
        return False
    if pa.kind in AT_KINDS:
        return math.isclose(float(pa.param), float(pb.param), rel_tol=1e-9)
    return pa.param == pb.param


def sort_key(name: str) -> tuple:
    """Table order: names without a prefix first, then by prefix; within one, accuracy, TAR (smallest FAR first),
    EER, AUC, rank-k, TPIR, merged rate, xnorm; unknown names last, by name."""
    parsed = parse(name)
    if parsed is None:
        prefix, base = split_prefix(name)
        return (prefix != "", prefix, len(_ORDER), 0.0, base)
    param = float(parsed.param) if parsed.param is not None else 0.0
    return (parsed.prefix != "", parsed.prefix, _ORDER.index(parsed.kind), param, "")
