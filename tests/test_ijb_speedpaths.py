"""The fast paths of the IJB 1:1 loader: pandas-by-path table parsing (blank lines kept as rows so they fail loudly,
no line count), and pair scoring by one GEMM, by row blocks into a reused buffer, or by cache-sized gathers --
each checked against a brute-force float64 dot or a hand-written file."""

from __future__ import annotations

import numpy as np
import pytest

from fr_bench.protocols import ProtocolError
from fr_bench.protocols.columns import read_columns
from fr_bench.protocols.ijb_meta import read_template_pairs, template_lookup
from fr_bench.protocols.ijb_templates import pair_scores

# ------------------------------------------------------------------------------------------------------- parsing


@pytest.mark.parametrize("text, line, message", [
    ("1 2 0\n\n3 4 1\n", 2, "expected 3 fields"),  # blank line inside
    ("1 2 0\n3 4 1\n\n", 3, "expected 3 fields"),  # blank line at the end
    ("1 2 0\n3 4 1\n \n", 3, "expected 3 fields"),  # a line of one space
    ("1 2 0\n3 4\n", 2, "expected 3 fields"),  # short line
    ("1 2 0 7\n3 4 1\n", 1, "expected 3 fields"),  # the first line sets the width: it is the bad one
    ("1 2 0\n3 4 1 9\n", 2, "expected 3 fields"),  # long line
    ("1 2 0\n3 4.5 1\n", 2, "field 2 should be an integer"),
    ("1 2 0\n3 99999999999999999999 1\n", 2, "field 2 is outside the 64-bit integer range"),
    ("1 2 0\n3 1_0 1\n", 2, "field 2 should be an integer"),  # Python's int() would take it; pandas does not
])
def test_int_table_bad_lines_named(tmp_path, text, line, message):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(ProtocolError, match=rf"pairs.txt:{line}: {message}"):
        read_columns(path, (int, int, int))


def test_int_table_line_endings(tmp_path):
    for text in ("1 2 0\n-3 4 1\n", "1 2 0\n-3 4 1", "1 2 0\r\n-3 4 1\r\n"):
        path = tmp_path / "t.txt"
        path.write_bytes(text.encode())
        cols = read_columns(path, (int, int, int))
        assert [c.tolist() for c in cols] == [[1, -3], [2, 4], [0, 1]]
        assert all(c.dtype == np.int64 for c in cols)


@pytest.mark.parametrize("text, line, message", [
    ("a.jpg b.jpg 1\n\nc.jpg d.jpg 0\n", 2, "expected 3 fields"),  # blank line with string columns
    ("a.jpg b.jpg 1\nc.jpg\n", 2, "expected 3 fields"),
])
def test_string_table_bad_lines_named(tmp_path, text, line, message):
    path = tmp_path / "pairs.txt"
    path.write_text(text)
    with pytest.raises(ProtocolError, match=rf"pairs.txt:{line}: {message}"):
        read_columns(path, (str, str, int))


def test_float_field_errors(tmp_path):
    path = tmp_path / "pts.txt"
    path.write_text("a.jpg 1.5 2\nb.jpg nan 3\n")  # pandas refuses "nan" with na_filter off; so must the scan
    with pytest.raises(ProtocolError, match=r"pts.txt:2: field 2 should be a number, found 'nan'"):
        read_columns(path, (str, float, float))


def test_string_only_table_blank_line(tmp_path):
    path = tmp_path / "names.txt"
    path.write_text("a b\n\nc d\n")
    with pytest.raises(ProtocolError, match=r"names.txt:2: expected 2 fields"):
        read_columns(path, (str, str))


def test_empty_and_missing_files(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ProtocolError, match="empty.txt: file is empty"):
        read_columns(empty, (int, int, int))
    newline = tmp_path / "newline.txt"
    newline.write_text("\n")
    with pytest.raises(ProtocolError, match="newline.txt:1: expected 3 fields"):
        read_columns(newline, (int, int, int))
    with pytest.raises(ProtocolError, match="nope.txt: file not found"):
        read_columns(tmp_path / "nope.txt", (int,))


def test_pairs_and_lookup_roundtrip(tmp_path):
    rng = np.random.default_rng(0)
    ids = np.array([3, 10, 11, 500, 70_000])
    a, b = rng.choice(ids, 200), rng.choice(ids, 200)
    y = rng.integers(0, 2, 200)
    path = tmp_path / "ijbc_template_pair_label.txt"
    path.write_text("".join(f"{i} {j} {k}\n" for i, j, k in zip(a, b, y)))
    ra, rb, labels = read_template_pairs(path)
    assert ra.tolist() == a.tolist() and rb.tolist() == b.tolist() and labels.tolist() == y.tolist()
    rows = template_lookup(ids, ra, path, "meta")
    assert ids[rows].tolist() == a.tolist()
    # ids too large for a lookup table take the binary-search branch: same rows
    big = ids * 10**9
    np.testing.assert_array_equal(template_lookup(big, ra.astype(np.int64) * 10**9, path, "meta"), rows)
    with pytest.raises(ProtocolError, match=r"ijbc_template_pair_label.txt:3: template 4 has no image in meta"):
        template_lookup(ids, np.array([3, 10, 4, 4]), path, "meta")


# ------------------------------------------------------------------------------------------------------- scoring


def _unit(rng, n, dim):
    f = rng.normal(size=(n, dim))
    return f / np.linalg.norm(f, axis=1, keepdims=True)


@pytest.mark.parametrize("kwargs", [
    {},  # dense: one product
    {"block_bytes": 4 * 30 * 4},  # dense: row blocks of 4 rows, the last one partial
    {"dense_threshold": 2.0},  # gathered, one chunk
    {"dense_threshold": 2.0, "block_bytes": 8 * 16 * 5},  # gathered, chunks of 5 pairs, the last one partial
])
def test_pair_scores_paths_match_float64_dot(kwargs):
    rng = np.random.default_rng(1)
    f64 = _unit(rng, 60, 16)
    a, b = rng.integers(0, 23, 997), rng.integers(25, 55, 997)  # 23 a-rows x 30 b-rows, ~1.4 pairs per cell
    expected = np.sum(f64[a] * f64[b], axis=1)
    s = pair_scores(f64, a, b, **kwargs)  # float64 input: scored in float32
    assert s.dtype == np.float32 and s.shape == (997,)
    np.testing.assert_allclose(s, expected, atol=2e-6)
    # Fortran-ordered input and int32 indices give the same scores
    s2 = pair_scores(np.asfortranarray(f64.astype(np.float32)), a.astype(np.int32), b.astype(np.int32), **kwargs)
    np.testing.assert_allclose(s2, s, atol=1e-6)
    # dtype=float64 accumulates in float64: equal to the brute-force float64 dot to rounding
    s64 = pair_scores(f64, a, b, dtype=np.float64, **kwargs)
    assert s64.dtype == np.float64
    np.testing.assert_allclose(s64, expected, rtol=0, atol=1e-14)


def test_pair_scores_sparse_pairs_take_the_gather_path_and_agree():
    rng = np.random.default_rng(2)
    f = _unit(rng, 400, 8).astype(np.float32)
    a, b = rng.integers(0, 400, 300), rng.integers(0, 400, 300)  # ~0.2% coverage: below the dense threshold
    np.testing.assert_allclose(pair_scores(f, a, b), pair_scores(f, a, b, dense_threshold=0.0), atol=1e-6)
    np.testing.assert_allclose(pair_scores(f, a, b), np.sum(f[a].astype(float) * f[b], axis=1), atol=1e-6)


def test_pair_scores_edges():
    f = np.eye(4, dtype=np.float32)
    assert pair_scores(f, np.array([], dtype=np.int64), np.array([], dtype=np.int64)).shape == (0,)
    np.testing.assert_array_equal(pair_scores(f, np.array([0, 1, 2]), np.array([0, 1, 3])), [1, 1, 0])
    for dense in (0.0, 2.0):
        with pytest.raises(IndexError):
            pair_scores(f, np.array([0, 4]), np.array([1, 1]), dense_threshold=dense)
    with pytest.raises(ValueError, match="float32 or float64"):
        pair_scores(f, np.array([0]), np.array([1]), dtype=np.float16)
