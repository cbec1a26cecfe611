"""Bad input to the loaders is a one-line error: unknown ``-o KEY`` options, and list files that are not UTF-8."""

from __future__ import annotations

import inspect

import pytest

from fr_bench.protocols import ProtocolError, list_protocols, load_protocol, load_spec
from fr_bench.protocols import _resolve as resolve_loader


@pytest.mark.parametrize("name", list_protocols())
def test_an_unknown_option_lists_the_valid_keys(name):
    factory = resolve_loader(load_spec(name)["loader"])
    valid = [p for p in list(inspect.signature(factory).parameters)[2:]]
    with pytest.raises(ProtocolError) as info:
        load_protocol(name, None, no_such_key="1")
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{name}: unknown option 'no_such_key'; valid keys: ")
    for key in valid:
        assert key in message


def test_check_counts_on_lfw_is_refused_naming_the_keys():
    """The README's own ``-o check_counts=false`` on lfw crashed with a TypeError traceback."""
    with pytest.raises(ProtocolError, match=r"^lfw: unknown option 'check_counts'; valid keys: format, pairs_file, "):
        load_protocol("lfw", None, check_counts="false")


def test_several_unknown_options_are_named_together():
    with pytest.raises(ProtocolError, match=r"unknown options 'a', 'b'"):
        load_protocol("demo", None, a=1, b=2)


def _pair_list(tmp_path):
    from fr_bench.protocols.folder import read_pair_list

    path = tmp_path / "pairs.txt"
    path.write_bytes(b"a/1.jpg a/2.jpg 1\nb/1.jpg b/2.jpg 1\nc/1.jpg d\xe9/1.jpg 0\n")
    return path, lambda: read_pair_list(path)


def _lfw_pairs(tmp_path):
    from fr_bench.protocols.lfw import read_pairs_txt

    path = tmp_path / "pairs.txt"
    path.write_bytes(b"1\t1\nAnn\t1\t2\nJos\xe9\t1\tBob\t1\n")
    return path, lambda: read_pairs_txt(path)


def _demo_split(tmp_path):
    from fr_bench.protocols.demo import read_split

    path = tmp_path / "identification.txt"
    path.write_bytes(b"gallery A/1.jpg\nprobe A/2.jpg\nprobe Ren\xe9/1.jpg\n")
    return path, lambda: read_split(path)


def _ijb_table(tmp_path):
    from fr_bench.protocols.columns import read_columns

    path = tmp_path / "ijbc_face_tid_mid.txt"
    path.write_bytes(b"1.jpg 1 1\n2.jpg 1 2\n3\xff.jpg 2 3\n")
    return path, lambda: read_columns(path, (str, int, int))


def _ijb_csv(tmp_path):
    from fr_bench.protocols.ijb_meta import read_1n_csv

    path = tmp_path / "ijbc_1N_probe_mixed.csv"
    path.write_bytes(b"TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,1,img/1.jpg\n2,2,img/\xff.jpg\n")
    return path, lambda: read_1n_csv(path)


@pytest.mark.parametrize("make", [_pair_list, _lfw_pairs, _demo_split, _ijb_table, _ijb_csv])
def test_a_list_that_is_not_utf8_names_file_and_line(tmp_path, make):
    path, read = make(tmp_path)
    with pytest.raises(ProtocolError, match=rf"^{path}:3: .*not UTF-8 text \(byte 0x"):
        read()
