"""Evaluation suites: several protocols run as one, declared in ``protocols/suites/<name>.toml``.

A suite names its members in order; each member is a protocol of :func:`fr_bench.protocols.list_protocols`, the
paths under a suite root where people keep its files (``candidates``: ``lfw.bin``, ``lfw``, ``LFW``; the built-in
``demo`` needs none), protocol options, and whether it is required. The TOML layout::

    display_name = "Quick"
    description = "The five 10-fold pair sets"

    [[members]]
    protocol = "lfw"
    candidates = ["lfw.bin", "lfw", "LFW"]
    required = true            # optional, default true
    options = {}               # optional: keyword options of fr_bench.protocols.load_protocol

Finding the members under a root is :mod:`fr_bench.suites.discover`; checking everything before extraction is
:mod:`fr_bench.suites.preflight`.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fr_bench._paths import specs_dir
from fr_bench.protocols import list_protocols, load_spec

__all__ = ["Member", "Suite", "SuiteError", "default_candidates", "list_suites", "load_suite",
           "parse_protocols_arg", "suite_from_protocols", "suites_dir"]

#: Where people keep each protocol under a suite root, for ad-hoc suites (``-p lfw,cfp_fp``) and as the reference
#: for the shipped TOMLs. Protocols not listed get their spec's ``[files] bin`` names, then their own name.
DEFAULT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "lfw": ("lfw.bin", "lfw", "LFW"),
    "cfp_fp": ("cfp_fp.bin", "cfp", "CFP", "cfp-dataset"),
    "cfp_ff": ("cfp_ff.bin", "cfp", "CFP", "cfp-dataset"),
    "agedb_30": ("agedb_30.bin", "agedb_30", "AgeDB-30", "agedb"),
    "calfw": ("calfw.bin", "calfw", "CALFW"),
    "cplfw": ("cplfw.bin", "cplfw", "CPLFW"),
    "ijbb": ("IJBB", "IJB_release/IJBB", "ijbb"),
    "ijbb_1n": ("IJBB", "IJB_release/IJBB", "ijbb"),
    "ijbc": ("IJBC", "IJB_release/IJBC", "ijbc"),
    "ijbc_1n": ("IJBC", "IJB_release/IJBC", "ijbc"),
    "demo": (),
}

#: Protocols that need no root (their data ships with fr_bench).
NO_ROOT = frozenset({"demo"})

_MEMBER_KEYS = {"protocol", "candidates", "options", "required"}
_SUITE_KEYS = {"display_name", "description", "members"}


class SuiteError(ValueError):
    """A bad suite (unknown name, malformed TOML, unknown protocol) or, from the preflight, everything wrong with a
    suite root at once. The message names the file and key, or is the whole preflight report."""


@dataclass(frozen=True)
class Member:
    """One protocol of a suite: where it is found under the suite root and how it is loaded."""

    protocol: str
    candidates: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=dict)
    required: bool = True

    @property
    def needs_root(self) -> bool:
        """False for protocols whose data ships with fr_bench (the demo)."""
        return self.protocol not in NO_ROOT and bool(self.candidates)

    def __hash__(self) -> int:  # options is a dict: hash by what identifies the member
        return hash((self.protocol, self.candidates, tuple(sorted(map(str, self.options.items())))))


@dataclass(frozen=True)
class Suite:
    """A named, ordered set of protocols evaluated together (one run, one table)."""

    name: str
    display_name: str
    description: str
    members: tuple[Member, ...]
    source: str = ""  #: the TOML file it came from ("" for ad-hoc suites)

    @property
    def protocols(self) -> list[str]:
        """The member protocol names, in order."""
        return [m.protocol for m in self.members]


def suites_dir() -> Path:
    """Folder of the shipped suite TOMLs (``protocols/suites/``, found like the protocol specs)."""
    return specs_dir() / "suites"


def list_suites() -> list[str]:
    """Names of the shipped suites, sorted."""
    folder = suites_dir()
    return sorted(p.stem for p in folder.glob("*.toml")) if folder.is_dir() else []


def default_candidates(protocol: str) -> tuple[str, ...]:
    """The paths under a suite root where ``protocol``'s files are usually kept (see :data:`DEFAULT_CANDIDATES`)."""
    if protocol in DEFAULT_CANDIDATES:
        return DEFAULT_CANDIDATES[protocol]
    spec = load_spec(protocol)
    names = [str(b) for b in spec.get("files", {}).get("bin", []) or []]
    for extra in (protocol, protocol.upper()):
        if extra not in names:
            names.append(extra)
    return tuple(names)


def _check_protocol(name: Any, where: str) -> str:
    known = list_protocols()
    if not isinstance(name, str) or name not in known:
        raise SuiteError(f"{where}: unknown protocol {name!r}; known protocols: {', '.join(known)}")
    return name


def _member(raw: Any, where: str) -> Member:
    if not isinstance(raw, dict):
        raise SuiteError(f"{where}: expected a table ([[members]]), got {raw!r}")
    unknown = set(raw) - _MEMBER_KEYS
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"expected {', '.join(sorted(_MEMBER_KEYS))}")
    if "protocol" not in raw:
        raise SuiteError(f"{where}: missing the 'protocol' key")
    protocol = _check_protocol(raw["protocol"], f"{where}.protocol")
    cands = raw.get("candidates", list(default_candidates(protocol)))
    if not isinstance(cands, list) or not all(isinstance(c, str) and c.strip() for c in cands):
        raise SuiteError(f"{where}.candidates: expected a list of relative paths, got {cands!r}")
    for c in cands:
        if Path(c).is_absolute() or ".." in Path(c).parts:
            raise SuiteError(f"{where}.candidates: {c!r} must be a path relative to the suite root")
    if not cands and protocol not in NO_ROOT:
        raise SuiteError(f"{where}.candidates: empty, but {protocol} needs files under the suite root")
    options = raw.get("options", {})
    if not isinstance(options, dict):
        raise SuiteError(f"{where}.options: expected a table of protocol options, got {options!r}")
    required = raw.get("required", True)
    if not isinstance(required, bool):
        raise SuiteError(f"{where}.required: expected true or false, got {required!r}")
    return Member(protocol, tuple(cands), dict(options), required)


def suite_from_mapping(data: Mapping[str, Any], name: str, source: str = "") -> Suite:
    """A :class:`Suite` from parsed TOML ``data``; errors name ``source`` (the file) and the key."""
    where = source or name
    unknown = set(data) - _SUITE_KEYS
    if unknown:
        raise SuiteError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                         f"expected {', '.join(sorted(_SUITE_KEYS))}")
    raw_members = data.get("members")
    if not isinstance(raw_members, list) or not raw_members:
        raise SuiteError(f"{where}: needs at least one [[members]] table (protocol = \"...\")")
    members = tuple(_member(m, f"{where}: members[{i}]") for i, m in enumerate(raw_members))
    seen: set[str] = set()
    for i, m in enumerate(members):
        if m.protocol in seen:
            raise SuiteError(f"{where}: members[{i}].protocol: {m.protocol!r} appears twice")
        seen.add(m.protocol)
    for key in ("display_name", "description"):
        if key in data and not isinstance(data[key], str):
            raise SuiteError(f"{where}: {key}: expected a string, got {data[key]!r}")
    return Suite(name=name, display_name=data.get("display_name", name), description=data.get("description", ""),
                 members=members, source=source)


def load_suite(name_or_path: str | Path) -> Suite:
    """The suite ``name_or_path``: a name of :func:`list_suites` or the path of a ``.toml`` file.

    Raises :class:`SuiteError` listing the available suites for an unknown name, and naming the file and key for
    malformed TOML or an unknown protocol.
    """
    text = str(name_or_path)
    path = Path(text).expanduser()
    if text.endswith(".toml") or path.is_file() or isinstance(name_or_path, Path):
        if not path.is_file():
            raise SuiteError(f"{path}: suite file not found")
    else:
        path = suites_dir() / f"{text}.toml"
        if not path.is_file():
            raise SuiteError(f"unknown suite {text!r}; available suites: {', '.join(list_suites()) or '(none)'} "
                             "(or pass the path of a .toml file)")
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise SuiteError(f"{path}: invalid TOML: {exc}") from None
    return suite_from_mapping(data, path.stem, str(path))


def suite_from_protocols(names: Iterable[str]) -> Suite:
    """An ad-hoc suite of the protocols ``names`` (``-p lfw,cfp_fp,agedb_30``), each at its default candidates."""
    names = [n.strip() for n in names if n.strip()]
    if not names:
        raise SuiteError("no protocol named (expected e.g. 'lfw,cfp_fp,agedb_30')")
    members = []
    for i, n in enumerate(names):
        _check_protocol(n, f"-p: item {i + 1}")
        if n in names[:i]:
            raise SuiteError(f"-p: {n!r} appears twice")
        members.append(Member(n, default_candidates(n)))
    joined = ",".join(names)
    return Suite(name=joined, display_name=", ".join(names), description=f"ad-hoc suite of {len(names)} protocols",
                 members=tuple(members))


def parse_protocols_arg(text: str) -> Suite | None:
    """The suite meant by a ``-p`` value: ``"suite:NAME"`` (a shipped name or a .toml path) or ``"a,b,c"``; a
    single protocol name gives ``None`` so the CLI keeps its one-protocol path."""
    text = text.strip()
    if text.startswith("suite:"):
        return load_suite(text[len("suite:"):].strip())
    if "," in text:
        return suite_from_protocols(text.split(","))
    return None
