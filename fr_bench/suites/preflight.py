"""Everything wrong with a suite run, found before any extraction and reported at once: ``preflight(...)``.

Checks, collecting every problem instead of stopping at the first:

* every member found under the root (:mod:`fr_bench.suites.discover`): missing ones are problems, or ``skipped``
  with the reason under ``allow_missing`` (and always for members declared ``required = false``); two candidates
  for one member are problems; misnamed packs are named with the name expected;
* every found member loads (:func:`fr_bench.protocols.load_protocol` with the member's options): a pack of the wrong
  size or an incomplete layout is reported with the loader's message, which names the file;
* the model's input contract against each member's declared one: the member's images come in its spec's
  ``color_space`` (RGB for every shipped protocol) as ``CROP_SIZE`` x ``CROP_SIZE`` crops. The extractor hands a
  model its crops in the channel order the model's contract declares (RGB crops are reordered for a BGR model), so
  a declared channel order is never a conflict; a contract that is only *assumed* is a warning, since a wrong
  guess (a BGR-trained model fed RGB) loses points silently. A spec whose colour space is not one a model can take,
  or that disagrees with what its loader delivers, is a problem. A model input of another aspect ratio than the
  square crops (e.g. SphereFace's 112x96) is a problem: resizing would squash faces aligned for another template;
  another size of the same shape is a warning (crops are resized);
* the output folder can be written (the same probe as ``frbench evaluate --out``);
* how many images will be embedded: images of distinct image sets only (members with the same images, e.g. IJB-C
  1:1 and 1:N, are extracted once), see :func:`image_set_id`.

The loaded protocols are kept (``Preflight.ok``) so the run does not load them twice.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fr_bench.models.preprocess import CHANNEL_ORDERS, Preprocessing
from fr_bench.protocols import Protocol, load_protocol, load_spec
from fr_bench.protocols.base import CROP_SIZE
from fr_bench.suites.discover import Found, discover_all
from fr_bench.suites.spec import Member, Suite, SuiteError

__all__ = ["Preflight", "contract_problems", "image_set_id", "preflight"]


@dataclass
class Preflight:
    """The outcome of :func:`preflight`: what can run, what is skipped, and everything wrong."""

    suite: Suite
    root: Path | None
    #: (member, path, loaded protocol) of each member ready to run, in suite order (path None for the demo).
    ok: list[tuple[Member, Path | None, Protocol]] = field(default_factory=list)
    #: (member, reason) of each member left out (missing under ``allow_missing``, or not required).
    skipped: list[tuple[Member, str]] = field(default_factory=list)
    #: Everything that stops the run, each naming the file or folder concerned.
    problems: list[str] = field(default_factory=list)
    #: Notes that do not stop the run (misnamed extra packs, resized crops, an assumed model contract).
    warnings: list[str] = field(default_factory=list)
    #: Images to embed: the sum over distinct image sets.
    n_images: int = 0
    #: Protocol names grouped by image set (members of one group share one extraction).
    image_sets: list[list[str]] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """True when nothing stops the run."""
        return not self.problems

    def report(self) -> str:
        """One readable block: members ready or skipped, problems, warnings, and the images to embed."""
        where = f" under {self.root}" if self.root is not None else ""
        lines = [f"Suite {self.suite.name} ({self.suite.display_name}){where}: {len(self.ok)} of "
                 f"{len(self.suite.members)} members ready, {len(self.skipped)} skipped, "
                 f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''}"]
        width = max((len(m.protocol) for m in self.suite.members), default=0)
        for member, path, protocol in self.ok:
            lines.append(f"  ready    {member.protocol:<{width}}  {path if path is not None else '(built in)'}  "
                         f"({len(protocol.images):,} images)")
        for member, reason in self.skipped:
            lines.append(f"  skipped  {member.protocol:<{width}}  {reason}")
        if self.problems:
            lines.append("Problems:")
            lines.extend(f"  - {p}" for p in self.problems)
        if self.warnings:
            lines.append("Warnings:")
            lines.extend(f"  - {w}" for w in self.warnings)
        shared = [g for g in self.image_sets if len(g) > 1]
        share = "".join(f"; {' and '.join(g)} share one" for g in shared)
        lines.append(f"Images to embed: {self.n_images:,} in {len(self.image_sets)} distinct image "
                     f"set{'s' if len(self.image_sets) != 1 else ''}{share}")
        return "\n".join(lines)

    def raise_for_problems(self) -> None:
        """Raise :class:`SuiteError` with the whole :meth:`report` when anything stops the run."""
        if self.problems:
            raise SuiteError(self.report())


def _keys(images: Any) -> list[str]:
    """``images.keys()``, without building an ImageRef per image for a file list (469k IJB-C refs take seconds)."""
    relpaths = getattr(images, "relpaths", None)
    if isinstance(relpaths, list) and isinstance(getattr(images, "key_prefix", None), str):
        return [images.key_prefix + r for r in relpaths]
    return list(images.keys())


def image_set_id(protocol: Protocol) -> str:
    """sha256 of a protocol's image list: the image keys, their count and the files the first and last are read from
    (keys are relative: ``loose_crop/1.jpg`` of IJB-B and of IJB-C differ only by the folder). Members with the same
    id embed the same images, so one extraction serves them all."""
    images = protocol.images
    n = len(images)
    h = hashlib.sha256(f"{n}\n".encode())
    if n:
        first, last = images.ref(0), images.ref(n - 1)
        h.update(f"{first.source}\t{first.member}\n{last.source}\t{last.member}\n".encode())
        h.update("\n".join(_keys(images)).encode())
    return h.hexdigest()


def _prep_of(embedder: Any) -> Preprocessing | None:
    """The input contract of ``embedder`` (an Embedder, a Preprocessing, or its dict form), None when unknown."""
    if embedder is None:
        return None
    if isinstance(embedder, Preprocessing):
        return embedder
    prep = getattr(embedder, "prep", None)
    if isinstance(prep, Preprocessing):
        return prep
    data = getattr(embedder, "preprocessing", embedder)
    if isinstance(data, Mapping):
        return Preprocessing.from_dict(data)
    return None


def contract_problems(member: Member, path: Path | None, spec: Mapping[str, Any], prep: Preprocessing | None, *,
                      protocol: Protocol | None = None) -> tuple[list[str], list[str]]:
    """(problems, warnings) of feeding member ``member``'s images (protocol ``spec``; ``protocol`` when it loaded) to
    a model of contract ``prep`` (None: no model), as the module doc says."""
    spec_file = spec.get("spec_file", member.protocol)
    where = f"{member.protocol} ({path if path is not None else 'built in'})"
    declared = str(spec.get("color_space", "RGB")).upper()
    problems: list[str] = []
    warnings: list[str] = []
    if declared not in CHANNEL_ORDERS:
        problems.append(f"{where}: {spec_file} declares color_space = {declared!r}; a model takes "
                        f"{' or '.join(CHANNEL_ORDERS)}")
    elif protocol is not None:
        delivered = str(getattr(protocol.images, "color_space", "RGB")).upper()
        if delivered != declared:
            problems.append(f"{where}: {spec_file} declares color_space = {declared!r} but its loader delivers "
                            f"{delivered} images; fix the spec or the loader")
    if prep is None:
        return problems, warnings
    h, w = prep.input_size
    if h != w:  # another aspect ratio than the square crops
        problems.append(
            f"{where}: input-size conflict: the model takes {h}x{w} input ({prep.source}) but {member.protocol}'s "
            f"images are {CROP_SIZE}x{CROP_SIZE} crops aligned to the square ArcFace template ({spec_file}); "
            "resizing would squash the faces: evaluate a model with a square input, or align the data for it")
    elif (h, w) != (CROP_SIZE, CROP_SIZE):
        warnings.append(f"{where}: the {CROP_SIZE}x{CROP_SIZE} crops are resized to the model's {h}x{w} input "
                        f"({prep.resize})")
    return problems, warnings


def _out_dir_problem(out_dir: str | Path) -> str | None:
    import click

    from fr_bench.cli_output import check_out_dir

    try:
        check_out_dir(out_dir)
    except click.ClickException as exc:
        return exc.message
    return None


def _load(found: Found, problems: list[str]) -> Protocol | None:
    member = found.member
    try:
        return load_protocol(member.protocol, found.path, **dict(member.options))
    except (ValueError, OSError, KeyError) as exc:  # ProtocolError is a ValueError; messages name the file
        text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        problems.append(f"{member.protocol} ({found.path if found.path is not None else 'built in'}): {text}")
        return None
    except Exception as exc:  # a loader bug must not hide the other problems: report it with its type
        problems.append(f"{member.protocol} ({found.path if found.path is not None else 'built in'}): unexpected "
                        f"{type(exc).__name__} while loading: {exc}")
        return None


def preflight(suite: Suite, root: str | Path | None, *, embedder: Any = None, out_dir: str | Path | None = None,
              allow_missing: bool = False) -> Preflight:
    """Check ``suite`` under ``root`` for a run of ``embedder`` writing to ``out_dir``; raises nothing.

    ``embedder``: an :class:`~fr_bench.models.Embedder` (or its :class:`Preprocessing`), None to skip the contract
    checks. ``allow_missing``: missing members are skipped (with the reason) instead of being problems.
    Call :meth:`Preflight.raise_for_problems` (or read ``.problems``) before extracting anything.
    """
    root_path = Path(root).expanduser() if root is not None else None
    result = Preflight(suite=suite, root=root_path)
    discovery = discover_all(suite, root_path)
    result.warnings.extend(discovery.warnings)
    prep = _prep_of(embedder)
    if prep is not None and prep.assumed:
        result.warnings.append(f"the model's input contract is assumed ({prep.source}): its channel order "
                               f"({prep.channel_order}), mean/std and size are guesses; a BGR-trained model fed RGB "
                               "loses points silently: declare the contract (--model-option channel_order=...)")
    sets: dict[str, list[str]] = {}
    sizes: dict[str, int] = {}
    for found in discovery.found:
        member = found.member
        result.warnings.extend(found.warnings)
        if found.problem is not None:
            if found.missing and (allow_missing or not member.required):
                why = "allow_missing" if member.required else "not required"
                reason = found.problem.removeprefix(f"{member.protocol}: ")
                result.skipped.append((member, f"{reason} ({why})"))
            else:
                result.problems.append(found.problem)
            continue
        protocol = _load(found, result.problems)
        # the model's contract is checked against the spec even when loading failed: every problem at once
        loaded = protocol is not None and protocol.spec.get("spec_file")
        spec = protocol.spec if loaded else load_spec(member.protocol)
        problems, warnings = contract_problems(member, found.path, spec, prep, protocol=protocol)
        result.problems.extend(problems)
        result.warnings.extend(warnings)
        if protocol is None or problems:
            continue
        result.ok.append((member, found.path, protocol))
        ident = image_set_id(protocol)
        sets.setdefault(ident, []).append(member.protocol)
        sizes[ident] = len(protocol.images)
    if out_dir is not None:
        problem = _out_dir_problem(out_dir)
        if problem:
            result.problems.append(problem)
    result.image_sets = list(sets.values())
    result.n_images = sum(sizes.values())
    return result
