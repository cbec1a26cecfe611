"""RecordIO packs: fixtures written in the real binary format (tests/writers_recordio.py), read without mxnet."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fr_bench.train.data import DataError, open_dataset
from fr_bench.train.recordio import MAGIC, RecordIODataset, RecordIOError, read_record
from writers_recordio import encode_image, encode_parts, ir_record, write_pack, write_records

MAGIC_BYTES = struct.pack("<I", MAGIC)


def _images(n: int, size: int = 12, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, size=(size, size + 2, 3), dtype=np.uint8) for _ in range(n)]


LABELS = [0, 0, 1, 1, 1, 2, 2]


@pytest.fixture()
def pack(tmp_path):
    imgs = _images(len(LABELS))
    return write_pack(tmp_path / "pack", imgs, LABELS), imgs


def test_round_trip_images_labels_header_and_property(pack):
    folder, imgs = pack
    ds = RecordIODataset(folder / "train.rec")
    assert len(ds) == len(LABELS)
    assert ds.labels.tolist() == LABELS
    assert ds.num_classes == 3
    assert ds.property == (3, 12, 14)
    n = len(LABELS)
    assert ds.header_labels == (n + 1, n + 1 + 3)  # identity records are not images
    assert ds.keys.tolist() == list(range(1, n + 1))
    for i, img in enumerate(imgs):
        x, y = ds[i]
        assert x.dtype == __import__("torch").uint8 and tuple(x.shape) == img.shape
        np.testing.assert_array_equal(x.numpy(), img)
        assert y == LABELS[i]
    d = ds.describe()
    assert d["kind"] == "recordio" and d["num_images"] == n and d["image_size"] == [12, 14]
    assert ds.class_counts().tolist() == [2, 3, 2]


def test_open_dataset_accepts_the_folder_or_the_rec_file(pack):
    folder, _ = pack
    for src in (folder, folder / "train.rec", str(folder)):
        ds = open_dataset(src)
        assert isinstance(ds, RecordIODataset) and len(ds) == len(LABELS)


def test_float_label_arrays_take_the_first_label(tmp_path):
    imgs = _images(4, seed=1)
    folder = write_pack(tmp_path, imgs, [1, 0, 1, 0], label_arrays=True)
    ds = RecordIODataset(folder / "train.rec")
    assert ds.labels.tolist() == [1, 0, 1, 0]
    key, label, _ = ds.record(0)
    assert key == 1 and label.tolist() == [1.0, 0.0]


def test_pack_without_header_or_property_uses_every_key_in_index_order(tmp_path):
    imgs = _images(3, seed=2)
    records = [(10 + i, ir_record(float(lab), encode_image(img))) for i, (img, lab) in
               enumerate(zip(imgs, [4, 0, 2]))]
    write_records(tmp_path / "x.rec", tmp_path / "x.idx", records[::-1])  # file order differs from key order
    ds = RecordIODataset(tmp_path / "x.rec")
    assert ds.keys.tolist() == [12, 11, 10]
    assert ds.labels.tolist() == [2, 0, 4]
    assert ds.num_classes == 5 and ds.property is None
    np.testing.assert_array_equal(ds[2][0].numpy(), imgs[0])


def test_multi_part_records_are_joined_with_the_magic(tmp_path):
    imgs = _images(3, seed=3)
    png = encode_image(imgs[1])
    pad = -(24 + len(png)) % 4  # the magic lands on a 4-byte boundary of the record
    extra = b"\0" * pad + MAGIC_BYTES + b"abcd" + MAGIC_BYTES + MAGIC_BYTES + b"xy"
    folder = write_pack(tmp_path, imgs, [0, 1, 1], extra_payload={1: extra})
    raw = (folder / "train.rec").read_bytes()
    flags = []
    pos = 0
    while pos < len(raw):
        magic, lrec = struct.unpack_from("<II", raw, pos)
        assert magic == MAGIC
        flags.append(lrec >> 29)
        pos += 8 + ((lrec & ((1 << 29) - 1)) + 3) // 4 * 4
    assert flags.count(1) == 1 and flags.count(2) == 2 and flags.count(3) == 1  # three magics -> four parts
    ds = RecordIODataset(folder / "train.rec")
    _, _, payload = ds.record(1)
    assert payload == png + extra
    np.testing.assert_array_equal(ds[1][0].numpy(), imgs[1])  # trailing bytes after the PNG end are ignored
    assert ds.labels.tolist() == [0, 1, 1]


def test_multi_part_record_split_inside_its_header(tmp_path):
    """id = magic puts a boundary at byte 8: the first part is shorter than the header (the slow path)."""
    img = _images(1, seed=4)[0]
    rec = struct.pack("<IfQQ", 0, 3.0, MAGIC, 0) + encode_image(img)
    write_records(tmp_path / "t.rec", tmp_path / "t.idx", [(5, rec)])
    ds = RecordIODataset(tmp_path / "t.rec")
    assert ds.labels.tolist() == [3]
    np.testing.assert_array_equal(ds[0][0].numpy(), img)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from([b"\x00\x01\x02\x03", b"abcd", MAGIC_BYTES, b"\xce\xd7"]), max_size=12),
       st.binary(max_size=3))
def test_read_record_inverts_the_writer(chunks, tail):
    record = b"".join(chunks) + tail
    blob = b"\x0a" * 8 + encode_parts(record)
    assert len(blob) % 4 == 0
    assert read_record(blob, 8, "mem") == record


def _line_offset(idx_text: str, key: int) -> int:
    for line in idx_text.splitlines():
        k, off = line.split("\t")
        if int(k) == key:
            return int(off)
    raise KeyError(key)


def test_truncated_pack_names_the_file_and_key(pack):
    folder, _ = pack
    rec = folder / "train.rec"
    off = _line_offset((folder / "train.idx").read_text(), 7)
    rec.write_bytes(rec.read_bytes()[:off + 30])  # cut inside the last image record; identity records lost
    with pytest.raises(RecordIOError) as exc:
        RecordIODataset(rec)
    msg = str(exc.value)
    assert "train.idx" in msg and "past the end" in msg  # identity records' offsets now point past the end
    # keep the index consistent with the cut: only header + images
    idx = folder / "train.idx"
    idx.write_text("".join(line + "\n" for line in idx.read_text().splitlines() if int(line.split()[0]) <= 7))
    with pytest.raises(RecordIOError, match=r"train\.rec \(record key 7\).*truncated pack"):
        RecordIODataset(rec)


def test_index_pointing_past_the_end(pack):
    folder, _ = pack
    idx = folder / "train.idx"
    size = (folder / "train.rec").stat().st_size
    lines = idx.read_text().splitlines()
    lines[3] = f"3\t{size + 100}"
    idx.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordIOError, match=r"train\.idx: key 3 points to byte \d+, past the end"):
        open_dataset(folder)


def test_bad_magic_names_file_and_key(pack):
    folder, _ = pack
    rec = folder / "train.rec"
    data = bytearray(rec.read_bytes())
    off = _line_offset((folder / "train.idx").read_text(), 2)
    data[off:off + 4] = b"\x00\x00\x00\x00"
    rec.write_bytes(bytes(data))
    with pytest.raises(RecordIOError, match=r"train\.rec \(record key 2\): bad magic"):
        RecordIODataset(rec)


def _offset_inside_a_record(line: str) -> str:
    key, off = line.split("\t")
    return f"{key}\t{int(off) + 8}"


@pytest.mark.parametrize("row, edit, error", [
    (4, _offset_inside_a_record, r"record key 4\): bad magic"),  # an offset inside a record
    (2, lambda line: "2 x", r"train\.idx:3: expected"),        # a syntax error names the line
], ids=["offset-inside-a-record", "syntax-error"])
def test_a_bad_index_line_is_named(pack, row, edit, error):
    folder, _ = pack
    idx = folder / "train.idx"
    lines = idx.read_text().splitlines()
    lines[row] = edit(lines[row])
    idx.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordIOError, match=error):
        RecordIODataset(folder / "train.rec")


def test_missing_image_key_in_index(pack):
    folder, _ = pack
    idx = folder / "train.idx"
    idx.write_text("".join(line + "\n" for line in idx.read_text().splitlines() if line.split()[0] != "5"))
    with pytest.raises(RecordIOError, match=r"train\.idx: no entry for image record key 5"):
        RecordIODataset(folder / "train.rec")


def test_property_must_cover_the_labels(pack):
    folder, _ = pack
    (folder / "property").write_text("2,12,14\n")
    with pytest.raises(RecordIOError, match=r"record key 6\): label 2 is not below num_classes=2 from .*property"):
        RecordIODataset(folder / "train.rec")
    (folder / "property").write_text("three,12,14\n")
    with pytest.raises(RecordIOError, match=r"property: expected one line"):
        RecordIODataset(folder / "train.rec")


def test_non_integer_label_is_refused(tmp_path):
    write_records(tmp_path / "a.rec", tmp_path / "a.idx", [(0, ir_record(1.5, encode_image(_images(1)[0])))])
    with pytest.raises(RecordIOError, match=r"record key 0\): label 1.5 is not a class index"):
        RecordIODataset(tmp_path / "a.rec")


def test_corrupt_image_bytes_fail_on_read_naming_the_key(tmp_path):
    records = [(0, ir_record(0.0, encode_image(_images(1)[0]))), (1, ir_record(1.0, b"not an image at all"))]
    write_records(tmp_path / "b.rec", tmp_path / "b.idx", records)
    ds = RecordIODataset(tmp_path / "b.rec")
    assert ds[0][1] == 0
    with pytest.raises(DataError, match=r"b\.rec \(record key 1\): cannot decode"):
        ds[1]


def test_pickles_after_use_and_reads_in_the_copy(pack):
    folder, imgs = pack
    ds = RecordIODataset(folder / "train.rec")
    ds[0]
    copy = pickle.loads(pickle.dumps(ds))
    np.testing.assert_array_equal(copy[4][0].numpy(), imgs[4])
    assert copy.labels.tolist() == LABELS


def test_jpeg_pack_decodes_to_rgb(tmp_path):
    """insightface packs hold JPEGs; a red image must come back red (RGB order, not BGR)."""
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 220
    folder = write_pack(tmp_path, [img], [0], fmt="JPEG")
    x = RecordIODataset(folder / "train.rec")[0][0].numpy().astype(int)
    assert x[..., 0].mean() > 200 and x[..., 2].mean() < 30
