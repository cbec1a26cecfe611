"""Data provenance: file hashes (with the mtime cache), tree fingerprints, protocol fingerprints, known releases."""

from __future__ import annotations

import hashlib
import json
import os

import pytest

from fr_bench import provenance
from fr_bench.provenance import (
    annotate_fingerprint,
    check_known_hashes,
    default_cache_path,
    file_sha256,
    protocol_fingerprint,
    tree_fingerprint,
)


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    """Every test gets its own hash cache (never the user's)."""
    monkeypatch.setenv("FRBENCH_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "hashes.json"


@pytest.fixture()
def count_reads(monkeypatch):
    """Counts how many times a file's content is actually streamed through SHA-256."""
    calls = []
    real = provenance._stream_sha256

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(provenance, "_stream_sha256", counting)
    return calls


def test_default_cache_path_follows_env(cache):
    assert default_cache_path() == cache


def test_file_sha256_matches_hashlib_across_chunks(tmp_path, cache):
    data = os.urandom(provenance.CHUNK_SIZE * 2 + 12345)  # spans three 1 MiB reads
    path = tmp_path / "pack.bin"
    path.write_bytes(data)
    assert file_sha256(path) == hashlib.sha256(data).hexdigest()
    empty = tmp_path / "empty"
    empty.write_bytes(b"")
    assert file_sha256(empty) == hashlib.sha256(b"").hexdigest()


def test_cache_hit_avoids_rereading_and_mtime_change_forces_recompute(tmp_path, cache, count_reads):
    path = tmp_path / "pairs.txt"
    path.write_bytes(b"10\t300\n")
    first = file_sha256(path)
    second = file_sha256(path)
    assert first == second == hashlib.sha256(b"10\t300\n").hexdigest()
    assert len(count_reads) == 1  # second call served from the cache file
    assert cache.is_file()
    stored = json.loads(cache.read_text())
    assert stored["entries"][os.path.abspath(path)]["sha256"] == first

    # same size, new content, new mtime: the cache must not answer
    path.write_bytes(b"10\t301\n")
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert file_sha256(path) == hashlib.sha256(b"10\t301\n").hexdigest()
    assert len(count_reads) == 2


def test_cache_false_neither_reads_nor_writes(tmp_path, cache, count_reads):
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    file_sha256(path, cache=False)
    file_sha256(path, cache=False)
    assert len(count_reads) == 2
    assert not cache.exists()


def test_corrupted_cache_is_ignored_and_repaired(tmp_path, cache, count_reads):
    path = tmp_path / "a.bin"
    path.write_bytes(b"abc")
    cache.parent.mkdir(parents=True)
    cache.write_text("{not json")
    assert file_sha256(path) == hashlib.sha256(b"abc").hexdigest()
    assert json.loads(cache.read_text())["version"] == 1  # rewritten valid
    # a well-formed cache with a wrong hash string for this file is not trusted either
    cache.write_text(json.dumps({"version": 1, "entries": {os.path.abspath(path): {"size": 3, "sha256": "x"}}}))
    assert file_sha256(path) == hashlib.sha256(b"abc").hexdigest()


def test_cache_merges_entries_of_several_files(tmp_path, cache):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_bytes(b"1")
    b.write_bytes(b"22")
    file_sha256(a)
    file_sha256(b)
    entries = json.loads(cache.read_text())["entries"]
    assert set(entries) == {os.path.abspath(a), os.path.abspath(b)}
    assert not list(cache.parent.glob("*.tmp"))  # atomic writes leave no temporary files


def test_file_sha256_errors_name_the_path(tmp_path, cache):
    with pytest.raises(FileNotFoundError):
        file_sha256(tmp_path / "missing.bin")
    with pytest.raises(IsADirectoryError, match="tree_fingerprint"):
        file_sha256(tmp_path)


def _make_tree(root):
    (root / "img" / "sub").mkdir(parents=True)
    (root / "img" / "1.jpg").write_bytes(b"x" * 10)
    (root / "img" / "sub" / "2.jpg").write_bytes(b"y" * 3)
    (root / "z.txt").write_bytes(b"")


def test_tree_fingerprint_is_sha256_of_sorted_path_size_lines(tmp_path):
    root = tmp_path / "tree"
    _make_tree(root)
    expected = hashlib.sha256(b"img/1.jpg\t10\nimg/sub/2.jpg\t3\nz.txt\t0\n").hexdigest()
    assert tree_fingerprint(root) == expected


def test_tree_fingerprint_changes_on_add_resize_rename_not_on_same_size_edit(tmp_path):
    root = tmp_path / "tree"
    _make_tree(root)
    base = tree_fingerprint(root)
    (root / "img" / "1.jpg").write_bytes(b"q" * 10)  # same size, new content: names+sizes only (documented)
    assert tree_fingerprint(root) == base
    (root / "img" / "1.jpg").write_bytes(b"q" * 11)  # resized
    resized = tree_fingerprint(root)
    assert resized != base
    (root / "img" / "3.jpg").write_bytes(b"")  # added
    added = tree_fingerprint(root)
    assert added not in (base, resized)
    os.rename(root / "img" / "3.jpg", root / "img" / "4.jpg")  # renamed
    assert tree_fingerprint(root) not in (base, resized, added)
    with pytest.raises(NotADirectoryError, match="missing"):
        tree_fingerprint(tmp_path / "missing")


def test_protocol_fingerprint_files_trees_and_combined(tmp_path, cache):
    root = tmp_path / "lfw"
    root.mkdir()
    (root / "lfw.bin").write_bytes(b"pack")
    (root / "pairs.txt").write_bytes(b"pairs")
    _make_tree(root / "imgs")
    fp = protocol_fingerprint([root / "lfw.bin", root / "pairs.txt", root / "imgs"], root=root)
    files = fp["files"]
    assert set(files) == {"lfw.bin", "pairs.txt", "imgs"}
    assert files["lfw.bin"] == {"sha256": hashlib.sha256(b"pack").hexdigest(), "size": 4, "kind": "file"}
    assert files["imgs"]["kind"] == "tree" and files["imgs"]["n_files"] == 3 and files["imgs"]["size"] == 13
    assert files["imgs"]["sha256"] == tree_fingerprint(root / "imgs")
    hashes = sorted(v["sha256"] for v in files.values())
    assert fp["combined"] == hashlib.sha256("\n".join(hashes).encode()).hexdigest()
    # the combined hash depends on bytes, not on where the files live
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "renamed.bin").write_bytes(b"pack")
    (other / "p.txt").write_bytes(b"pairs")
    _make_tree(other / "imgs2")
    fp2 = protocol_fingerprint([other / "renamed.bin", other / "p.txt", other / "imgs2"])
    assert fp2["combined"] == fp["combined"]
    (other / "p.txt").write_bytes(b"pairz")
    assert protocol_fingerprint([other / "renamed.bin", other / "p.txt", other / "imgs2"])["combined"] != fp[
        "combined"]
    with pytest.raises(FileNotFoundError, match="nope.bin"):
        protocol_fingerprint([root / "nope.bin"])


def test_check_known_hashes(tmp_path):
    fp = {"files": {"lfw.bin": {"sha256": "ab" * 32, "size": 1, "kind": "file"},
                    "meta/pairs.txt": {"sha256": "cd" * 32, "size": 1, "kind": "file"}}}
    known = [
        {"file": "lfw.bin", "sha256": "ff" * 32, "label": "other release"},
        {"file": "lfw.bin", "sha256": ("AB" * 32), "label": "insightface"},  # case-insensitive
    ]
    assert check_known_hashes(fp, known, "lfw") == ("insightface", [])
    # a release of several files needs every applying entry to match
    multi = [{"file": "lfw.bin", "sha256": "ab" * 32, "label": "R"}, {"file": "pairs.txt", "sha256": "00" * 32,
                                                                       "label": "R"}]
    label, flags = check_known_hashes(fp, multi, "lfw")
    assert label is None and len(flags) == 1
    assert flags[0].startswith("data hash matches no known release of lfw")
    assert "lfw.bin sha256 abababababab" in flags[0] and "R" in flags[0]
    # entries naming files this instance does not have do not apply
    assert check_known_hashes(fp, [{"file": "cfp.bin", "sha256": "00" * 32, "label": "X"}], "lfw")[0] is None
    # no known hashes: neither a label nor a flag
    assert check_known_hashes(fp, [], "lfw") == (None, [])


def test_annotate_fingerprint_states(tmp_path):
    fp = {"files": {"lfw.bin": {"sha256": "ab" * 32, "size": 1, "kind": "file"}}, "combined": "c" * 64}
    out, flags = annotate_fingerprint(fp, [], "lfw")
    assert (out["check"], out["release"], flags) == ("unchecked", None, [])
    assert "lists no known data hashes" in out["note"]
    out, flags = annotate_fingerprint(fp, [{"file": "lfw.bin", "sha256": "ab" * 32, "label": "v1"}], "lfw")
    assert (out["check"], out["release"], flags) == ("known", "v1", [])
    out, flags = annotate_fingerprint(fp, [{"file": "lfw.bin", "sha256": "00" * 32, "label": "v1"}], "lfw")
    assert out["check"] == "unknown" and out["release"] is None and flags == [out["note"]]
    assert out["combined"] == fp["combined"] and "check" not in fp  # input untouched
