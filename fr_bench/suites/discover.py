"""Which file or folder under a suite root holds each member: ``discover(suite, root)``.

Each member lists ``candidates``, paths relative to the root (``lfw.bin``, ``lfw``, ``LFW``). Exactly one existing
candidate is the member's path; none is a "missing" problem naming the candidates tried; two are a problem naming
both (the run would otherwise pick one silently). Names are compared exactly, letter case included, by listing the
folders (so ``LFW`` and ``lfw`` are not the same candidate on a case-insensitive disk). A suite of one member also
accepts the root itself as that member's pack or folder.

Entries of the root that look like a member under another name (``lfw_112.bin``, ``cfp-fp.bin``, ``IJB-C``) are
reported with the name expected: as part of the member's problem when it is missing, as a warning otherwise. A
``.bin`` file that looks like no member is a warning too (the run ignores it).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from fr_bench.protocols import list_protocols, load_spec
from fr_bench.suites.spec import Member, Suite

__all__ = ["Discovery", "Found", "discover", "discover_all", "name_key"]


@dataclass(frozen=True)
class Found:
    """Where ``member`` is under the root: ``path`` (None when missing, or for the demo which needs no root) and
    ``problem`` (None when found unambiguously). ``warnings`` are notes that do not stop the run."""

    member: Member
    path: Path | None
    problem: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def missing(self) -> bool:
        """True when no candidate exists (as opposed to an ambiguity or another problem)."""
        problem = self.problem or ""
        return self.path is None and problem.startswith(f"{self.member.protocol}: missing")


@dataclass(frozen=True)
class Discovery:
    """Every member's :class:`Found`, plus warnings about root entries that belong to no member."""

    found: list[Found]
    warnings: list[str] = field(default_factory=list)


def name_key(name: str) -> str:
    """``name`` reduced for loose comparison: lower case, without a ``.bin`` suffix, letters and digits only
    (``"CFP-FP.bin"`` -> ``"cfpfp"``)."""
    stem = name[:-4] if name.lower().endswith(".bin") else name
    return re.sub(r"[^a-z0-9]", "", stem.lower())


class _Lister:
    """Exact-case existence checks through cached folder listings."""

    def __init__(self) -> None:
        self._cache: dict[Path, set[str]] = {}

    def names(self, folder: Path) -> set[str]:
        if folder not in self._cache:
            try:
                self._cache[folder] = set(os.listdir(folder))
            except OSError:
                self._cache[folder] = set()
        return self._cache[folder]

    def exists(self, root: Path, rel: str) -> Path | None:
        here = root
        for part in Path(rel).parts:
            if part not in self.names(here):
                return None
            here = here / part
        return here


def _member_keys(member: Member) -> set[str]:
    keys = {name_key(member.protocol)}
    keys.update(name_key(Path(c).name) for c in member.candidates)
    return {k for k in keys if k}


def _match_len(key: str, member_key: str) -> int:
    """How specifically ``key`` (a root entry) matches ``member_key``: the length of the shorter when one starts the
    other (``lfw112`` matches ``lfw`` by 3; ``ijbc`` matches ``ijbc`` and ``ijbc1n`` both by 4), else 0."""
    if key.startswith(member_key) or (len(key) >= 3 and member_key.startswith(key)):
        return min(len(key), len(member_key))
    return 0


def _other_protocol_keys(suite: Suite) -> dict[str, str]:
    """Loose keys of the .bin packs of protocols outside the suite (``cfp_ff.bin`` is not a misnamed cfp_fp)."""
    inside = set(suite.protocols)
    keys: dict[str, str] = {}
    for name in list_protocols():
        if name in inside:
            continue
        keys[name_key(name)] = name
        for b in load_spec(name).get("files", {}).get("bin", []) or []:
            keys[name_key(str(b))] = name
    return keys


def _expected_name(member: Member, is_file: bool) -> str:
    """The candidate to suggest for a misnamed entry: the first ``.bin`` one for a file, else the first folder."""
    for c in member.candidates:
        if c.lower().endswith(".bin") == is_file:
            return c
    return member.candidates[0]


def _strays(suite: Suite, root: Path, lister: _Lister) -> tuple[dict[str, list[str]], list[str]]:
    """Root entries that no candidate names: per protocol, the ones that look like it; and general warnings."""
    claimed = {Path(c).parts[0] for m in suite.members for c in m.candidates}
    others = _other_protocol_keys(suite)
    per_member: dict[str, list[str]] = {}
    general: list[str] = []
    for entry in sorted(lister.names(root)):
        if entry in claimed or entry.startswith("."):
            continue
        path = root / entry
        is_file = path.is_file()
        is_bin = is_file and entry.lower().endswith(".bin")
        if is_file and not is_bin:
            continue
        key = name_key(entry)
        if key in others:
            general.append(f"{path}: looks like the protocol {others[key]}, which suite {suite.name} does not include; "
                           "ignored")
            continue
        scores = {m.protocol: max((_match_len(key, k) for k in _member_keys(m)), default=0) for m in suite.members}
        best = max(scores.values(), default=0)
        if best == 0:
            if is_bin:
                expected = ", ".join(c for m in suite.members for c in m.candidates if c.lower().endswith(".bin"))
                general.append(f"{path}: a .bin pack that no member of suite {suite.name} names (expected names: "
                               f"{expected or 'none'}); ignored")
            continue
        for m in suite.members:
            if scores[m.protocol] == best and m.candidates:
                per_member.setdefault(m.protocol, []).append(
                    f"{path} looks like {m.protocol} under an unexpected name: rename it to "
                    f"{root / _expected_name(m, is_file)} (the names tried are {', '.join(m.candidates)})")
    return per_member, general


def _find(member: Member, root: Path | None, suite: Suite, lister: _Lister, strays: list[str]) -> Found:
    tried = ", ".join(member.candidates)
    if not member.needs_root:
        return Found(member, None)
    if root is None:
        return Found(member, None, f"{member.protocol}: missing: no suite root given (pass --root DIR); it is looked "
                                   f"for as {tried}")
    if root.is_file():
        if len(suite.members) == 1:
            return Found(member, root)
        return Found(member, None, f"{member.protocol}: missing: the suite root {root} is a file; a suite of "
                                   f"{len(suite.members)} members needs a folder holding {tried}")
    hits = [p for p in (lister.exists(root, c) for c in member.candidates) if p is not None]
    unique = list(dict.fromkeys(hits))
    if len(unique) > 1:
        return Found(member, None, f"{member.protocol}: {len(unique)} candidates exist: "
                                   f"{' and '.join(str(p) for p in unique)}; keep one (move the others away) or name "
                                   "the one to use in a suite TOML (candidates = [...])", tuple(strays))
    if unique:
        return Found(member, unique[0], None, tuple(f"{s}; ignored" for s in strays))
    if len(suite.members) == 1 and root.is_dir() and not strays:
        return Found(member, root)  # the root is the member's own folder; the loader checks its layout
    hint = f"; {'; '.join(strays)}" if strays else ""
    return Found(member, None, f"{member.protocol}: missing under {root} (tried {tried}){hint}")


def discover_all(suite: Suite, root: str | Path | None) -> Discovery:
    """Every member's :class:`Found` under ``root`` plus warnings about entries that belong to no member."""
    lister = _Lister()
    path = Path(root).expanduser() if root is not None else None
    if path is not None and not path.exists():
        found = [Found(m, None, f"{m.protocol}: missing: the suite root {path} does not exist") if m.needs_root
                 else Found(m, None) for m in suite.members]
        return Discovery(found)
    per_member: dict[str, list[str]] = {}
    general: list[str] = []
    if path is not None and path.is_dir():
        per_member, general = _strays(suite, path, lister)
    found = [_find(m, path, suite, lister, per_member.get(m.protocol, [])) for m in suite.members]
    return Discovery(found, general)


def discover(suite: Suite, root: str | Path | None) -> list[Found]:
    """Where each member of ``suite`` is under ``root``, in member order (see the module doc)."""
    return discover_all(suite, root).found


def found_paths(found: Iterable[Found]) -> dict[str, Path | None]:
    """Protocol name -> path of the members found without a problem."""
    return {f.member.protocol: f.path for f in found if f.problem is None}
