"""Named conventions shared by every protocol: choosing one per group, and the flip-fusion group.

A protocol lists, per metric group, the named conventions its ``evaluate`` accepts, the default first
(``protocol.conventions``). :func:`choose_conventions` is the one place a caller's choice (``-c GROUP=NAME``) is
checked against that list and completed with the defaults.

Flip fusion (group ``"flip"``) is how an image's embedding is combined with its mirror image's. The extractor does
the fusion, so the runner passes the mode it extracted with (``conventions["flip"]``); a protocol only records it
(result conventions, score description), it cannot change it after extraction. Groups decided at extraction are
listed in :data:`EXTRACTION_GROUPS`: a table that re-evaluates the same embeddings under each convention of a group
must skip them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from fr_bench.metrics import TAR_CONVENTIONS as _METRIC_TAR_CONVENTIONS

#: TAR@FAR readings of a ROC every verification protocol accepts: :data:`fr_bench.metrics.TAR_CONVENTIONS` (which
#: documents each), the published tables' reading ("nearest") first.
TAR_CONVENTIONS = tuple(sorted(_METRIC_TAR_CONVENTIONS, key=lambda name: name != "nearest"))

#: Flip fusion conventions and what each does (the first is the usual default; K-FACE defaults to ``concat``).
FLIP_CONVENTIONS: dict[str, str] = {
    "sum": "sum of the image's and its mirror image's embeddings (insightface)",
    "concat": "image and mirror embeddings concatenated, then L2-normalised (UNPG's released K-FACE evaluation)",
    "none": "the image's embedding alone (no mirror image)",
}

#: Convention groups fixed when the embeddings are extracted: evaluating the same embeddings under another name
#: would only relabel them.
EXTRACTION_GROUPS = ("flip",)

#: Short description of the features each flip convention yields, for the text describing the score.
FLIP_FEATURES: dict[str, str] = {
    "sum": "flip-summed embeddings (image + mirror)",
    "concat": "image and mirror embeddings concatenated",
    "none": "image embeddings (no mirror)",
}


def default_first(names: Sequence[str], default: str | None) -> list[str]:
    """``names`` with ``default`` moved to the front (``default`` None or unknown: ``names`` unchanged)."""
    names = list(names)
    if default is None or default not in names:
        return names
    return [default] + [n for n in names if n != default]


def check_flip(value: str, where: str = "flip") -> str:
    """``value`` if it names a flip convention, else a ValueError listing them."""
    if value not in FLIP_CONVENTIONS:
        raise ValueError(f"{where}: unknown flip convention {value!r}; choose one of {', '.join(FLIP_CONVENTIONS)}")
    return value


def choose_conventions(owner: str, known: Mapping[str, Sequence[str]],
                       conventions: Mapping[str, str] | None) -> dict[str, str]:
    """The convention of every group of ``known`` (the caller's choice, else the group's first = default).

    An unknown group or an unknown name in a group raises a ValueError naming ``owner`` (the protocol) and listing
    what is accepted.
    """
    conventions = dict(conventions or {})
    unknown = [g for g in conventions if g not in known]
    if unknown:
        raise ValueError(f"{owner}: unknown convention group {unknown[0]!r}; this protocol accepts "
                         f"{', '.join(known)}")
    chosen: dict[str, str] = {}
    for group, allowed in known.items():
        value = conventions.get(group, allowed[0])
        if value not in allowed:
            raise ValueError(f"{owner}: unknown {group!r} convention {value!r}; choose one of {', '.join(allowed)}")
        chosen[group] = value
    return chosen
