"""Bad input to the loaders is a one-line error: unknown ``-o KEY`` options, and list files that are not UTF-8."""

from __future__ import annotations

import importlib
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


# (reader "module:function", file name, content whose line 3 is not UTF-8, extra arguments after the path)
_LISTS = [
    ("fr_bench.protocols.folder:read_pair_list", "pairs.txt",
     b"a/1.jpg a/2.jpg 1\nb/1.jpg b/2.jpg 1\nc/1.jpg d\xe9/1.jpg 0\n", ()),
    ("fr_bench.protocols.lfw:read_pairs_txt", "pairs.txt", b"1\t1\nAnn\t1\t2\nJos\xe9\t1\tBob\t1\n", ()),
    ("fr_bench.protocols.demo:read_split", "identification.txt",
     b"gallery A/1.jpg\nprobe A/2.jpg\nprobe Ren\xe9/1.jpg\n", ()),
    ("fr_bench.protocols.columns:read_columns", "ijbc_face_tid_mid.txt", b"1.jpg 1 1\n2.jpg 1 2\n3\xff.jpg 2 3\n",
     ((str, int, int),)),
    ("fr_bench.protocols.ijb_meta:read_1n_csv", "ijbc_1N_probe_mixed.csv",
     b"TEMPLATE_ID,SUBJECT_ID,FILENAME\n1,1,img/1.jpg\n2,2,img/\xff.jpg\n", ()),
]


@pytest.mark.parametrize("reader, name, content, args", _LISTS, ids=[r[0].split(":")[1] for r in _LISTS])
def test_a_list_that_is_not_utf8_names_file_and_line(tmp_path, reader, name, content, args):
    module, function = reader.split(":")
    read = getattr(importlib.import_module(module), function)
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(ProtocolError, match=rf"^{path}:3: .*not UTF-8 text \(byte 0x"):
        read(path, *args)
