"""Shared test helpers: where the repository and ../shared (real faces and models, optional) live."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    """Every test gets its own fr_bench cache folder (hashes, embeddings), never the user's."""
    monkeypatch.setenv("FRBENCH_CACHE", str(tmp_path_factory.mktemp("frbench_cache")))
    monkeypatch.setenv("MPLBACKEND", "Agg")


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch intra-op thread for a module (``pytest.mark.usefixtures("one_torch_thread")``): tiny models are not
    faster with more, and a shared 2-core CI box thrashes with them."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test saying why (the folder is optional outside CI)."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"{path} is absent: ../shared (real faces and models) is not beside this checkout")
    return path


os.environ.setdefault("MPLBACKEND", "Agg")


def _tree(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")} if folder.exists() else set()


@pytest.fixture(autouse=True, scope="session")
def _repository_results_untouched():
    """No test may write into the repository's results/ (the stored, published results): a command run without
    --out writes there, so such a test fails here, naming what it wrote."""
    folder = REPO / "results"
    before = _tree(folder)
    yield
    added = sorted(_tree(folder) - before)
    assert not added, f"tests wrote into {folder}: {added[:5]} (pass --out / out= a tmp_path)"
