"""Installed the way users install a library: a built wheel carries the protocol specs and the reference models.

The wheel is built from a copy of the checkout (the build writes ``build/`` and ``*.egg-info`` beside the sources)
and installed with ``pip install --target`` into a temporary folder that a child interpreter puts first on its
path; the commands run from a folder outside the checkout, so nothing beside the sources can be found by accident.
"""

from __future__ import annotations

import importlib.metadata
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import REPO

from fr_bench import _paths

_SKIP = shutil.ignore_patterns(".git", ".ci", "results", "bench", "tests", "build", "dist", "*.egg-info",
                               "__pycache__", ".pytest_cache", ".hypothesis", ".frbench_cache")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout, installed into a fresh ``--target`` folder."""
    base = tmp_path_factory.mktemp("wheel")
    src = base / "src"
    shutil.copytree(REPO, src, ignore=_SKIP)
    wheels = base / "wheels"
    # this environment's setuptools when it can build the wheel by itself (>= 70.1 has bdist_wheel), else pip's
    # isolated build (what `pip install .` does; it fetches setuptools from the index or pip's cache)
    isolation = [] if _version("setuptools") >= (70, 1) else ["--use-pep517"]
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(src),
                            *(["--no-build-isolation"] if not isolation else isolation)],
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (wheel,) = wheels.glob("fr_bench-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("protocols", "reference_models"):
        shipped = {f"fr_bench/_data/{folder}/{p.relative_to(REPO / folder).as_posix()}"
                   for p in (REPO / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts}
        assert shipped and shipped <= names, f"wheel lacks {sorted(shipped - names)[:5]}"
    target = base / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True, timeout=300)
    return target


def _version(dist: str) -> tuple[int, ...]:
    try:
        text = importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return (0,)
    return tuple(int(p) for p in text.split(".")[:2] if p.isdigit())


def _run(target: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "FRBENCH_HOME"}
    env["PYTHONPATH"] = str(target)
    return subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_wheel_runs_from_outside_the_checkout(installed, tmp_path):
    code = ("import fr_bench, fr_bench._paths as p; from fr_bench.models import load_model; "
            "print(fr_bench.__file__); print(p.specs_dir()); print(p.reference_models_dir()); "
            "print(type(load_model('sface')).__name__)")
    out = _run(installed, tmp_path, "-c", code)
    assert out.returncode == 0, out.stderr
    module, specs, models, _ = out.stdout.splitlines()[:4]
    assert Path(module).is_relative_to(installed)
    assert Path(specs) == installed / "fr_bench" / "_data" / "protocols"
    assert Path(models) == installed / "fr_bench" / "_data" / "reference_models"
    listing = _run(installed, tmp_path, "-m", "fr_bench", "protocols")
    assert listing.returncode == 0, listing.stderr
    listed = {line.split()[0] for line in listing.stdout.splitlines() if line.strip()}
    assert listed == {p.stem for p in (REPO / "protocols").glob("*.toml")}


def test_lookup_order(tmp_path, monkeypatch):
    """``$FRBENCH_HOME`` first, then inside the package (wheel), then beside it (checkout); else a clear error."""
    pkg = tmp_path / "site" / "fr_bench"
    monkeypatch.delenv("FRBENCH_HOME", raising=False)
    monkeypatch.setattr(_paths, "PACKAGE_DIR", pkg)
    monkeypatch.setattr(_paths, "SHIPPED_DIR", pkg / "_data")
    with pytest.raises(FileNotFoundError, match=r"'protocols' folder.*FRBENCH_HOME"):
        _paths.specs_dir()
    (tmp_path / "site" / "protocols").mkdir(parents=True)
    assert _paths.specs_dir() == tmp_path / "site" / "protocols"
    (pkg / "_data" / "protocols").mkdir(parents=True)
    assert _paths.specs_dir() == pkg / "_data" / "protocols"
    home = tmp_path / "home"
    monkeypatch.setenv("FRBENCH_HOME", str(home))
    with pytest.raises(FileNotFoundError, match="FRBENCH_HOME"):
        _paths.specs_dir()
    (home / "protocols").mkdir(parents=True)
    assert _paths.specs_dir() == home / "protocols"
