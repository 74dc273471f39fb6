"""Reading, joining and naming what data gives: real FIFOs, devices, sockets, symlinks."""

from __future__ import annotations

import json
import os
import re
import socket
import sys
import unicodedata
from pathlib import Path

import pytest

from pixgate.safe_io import (
    HASHED_PREFIX,
    UnsafeInputError,
    contained,
    loads_json,
    name_id,
    printable,
    read_regular,
    safe_file_name,
    sha256_regular,
    shown,
)
from tests.conftest import remove_deep_tree

# Every test here touches files that could hang a careless reader: a hang must fail.
pytestmark = pytest.mark.timeout(30)


def _specials(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Paths that are not regular files, with the words the error must use."""
    fifo = tmp_path / "fifo.png"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.png"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "loop_a.png").symlink_to(tmp_path / "loop_b.png")
    (tmp_path / "loop_b.png").symlink_to(tmp_path / "loop_a.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    (tmp_path / "dangling.png").symlink_to(tmp_path / "nowhere")
    return {
        "fifo": (fifo, "FIFO"),
        "socket": (sock_path, "socket"),
        "folder": (tmp_path / "folder.png", "folder"),
        "loop": (tmp_path / "loop_a.png", "symlink loop"),
        "device": (tmp_path / "zero.png", "character device"),
        "dangling": (tmp_path / "dangling.png", "no such file"),
    }


@pytest.mark.parametrize("kind", ["fifo", "socket", "folder", "loop", "device", "dangling"])
def test_only_regular_files_are_read(kind: str, tmp_path: Path) -> None:
    path, words = _specials(tmp_path)[kind]
    with pytest.raises(UnsafeInputError, match=words):
        read_regular(path, 1 << 20)
    with pytest.raises(UnsafeInputError, match=words):
        sha256_regular(path)


def test_size_is_checked_before_reading(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(b"x" * 1001)
    assert read_regular(path, 1001) == b"x" * 1001
    with pytest.raises(UnsafeInputError, match="1,001 bytes, over the 1,000-byte limit"):
        read_regular(path, 1000)


def test_contained_refuses_paths_that_leave_their_folder(tmp_path: Path) -> None:
    root = tmp_path / "golden"
    (root / "baseline").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    (root / "baseline" / "out").symlink_to(tmp_path / "elsewhere")
    assert contained(root, "baseline/a.png") == root / "baseline" / "a.png"
    for rel, words in (
        ("../victim.txt", "'..'"),
        ("/etc/passwd", "absolute"),
        ("baseline/../../x", "'..'"),
        ("baseline//x", "empty"),
        ("a\0b", "NUL"),
        ("baseline/out/x.png", "leads outside"),
    ):
        with pytest.raises(UnsafeInputError, match=words):
            contained(root, rel)


def _unescape(shown: str) -> bytes:
    back = bytearray()
    i = 0
    while i < len(shown):
        if shown.startswith("\\\\", i):
            back += b"\\"
            i += 2
        elif shown.startswith("\\x", i):
            back.append(int(shown[i + 2 : i + 4], 16))
            i += 4
        else:
            back += shown[i].encode()
            i += 1
    return bytes(back)


def test_name_ids_are_lossless_and_printable() -> None:
    names = [b"promo/\xc3\xa9t\xc3\xa9 10% off", b"caf\xe9 \\x41\xff.png", b"a\\xff", b"a\xff", b"a\\b"]
    ids = [name_id(os.fsdecode(raw)) for raw in names]
    assert ids[0] == "promo/été 10% off"  # a plain name is its own id
    assert ids[1] == "caf\\xe9 \\\\x41\\xff.png"
    assert len(set(ids)) == len(ids)  # a literal "\xff" and a raw 0xFF byte do not meet
    for raw, ident in zip(names, ids, strict=True):
        ident.encode("utf-8")  # writable to Arrow
        assert _unescape(ident) == raw


def test_printable_shows_anything() -> None:
    assert printable("a\\b") == "a\\b"  # valid text is left alone
    assert printable("\ud800 lone") == "\\ud800 lone"
    assert printable(os.fsdecode(b"caf\xe9")) == "caf\\xe9"


#: Characters that act on a terminal or a CI log instead of showing, and how they show.
ACTING = {
    "\x1b": "\\x1b",  # ESC: colours, cursor moves, titles, hyperlinks
    "\x07": "\\x07",  # BEL
    "\r": "\\x0d",  # CR: overwrites the line
    "\n": "\\x0a",
    "\x00": "\\x00",
    "\x08": "\\x08",
    "\x0c": "\\x0c",
    "\x7f": "\\x7f",  # DEL
    "\x85": "\\u0085",  # NEL, a C1 control
    "\x9b": "\\u009b",  # CSI, a C1 control some terminals obey
    "\u202e": "\\u202e",  # right-to-left override
    "\u2066": "\\u2066",  # left-to-right isolate ... pop directional isolate
    "\u2069": "\\u2069",
    "\u200b": "\\u200b",  # zero-width space
    "\ufeff": "\\ufeff",  # byte order mark
    "\u2028": "\\u2028",  # line separator
    "\ufffe": "\\ufffe",  # a noncharacter
    "\ue000": "\\ue000",  # private use
    chr(0xD800): "\\ud800",  # a lone surrogate
    chr(0xDCE9): "\\xe9",  # the byte 0xE9 of a name that is not UTF-8, as os.fsdecode gives it
    "\U000e0041": "\\U000e0041",  # a tag character
}


@pytest.mark.parametrize(("char", "escape"), ACTING.items(), ids=[f"U+{ord(c):04X}" for c in ACTING])
def test_shown_escapes_what_would_act_rather_than_show(char: str, escape: str) -> None:
    assert shown(f"a{char}b") == f"a{escape}b"
    assert shown(f"a{char}b", backslashes=False) == f"a{escape}b"


def test_shown_leaves_readable_text_as_it_is() -> None:
    for text in ("promo/été 10% off.png", "日本語 ポスター", "a\u00a0b", "e\u0301", "\U0001f600 [x] *y* <z>"):
        assert shown(text) == text


def _unshown(text: str) -> str:
    def one(match: re.Match[str]) -> str:
        escape = match.group(1)
        if escape == "\\":
            return "\\"
        code = int(escape[1:], 16)
        return chr(0xDC00 + code) if escape[0] == "x" and code >= 0x80 else chr(code)

    return re.sub(r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4}|U[0-9a-f]{8})", one, text)


def test_shown_is_unambiguous() -> None:
    texts = ["\x1b[31m", "\\x1b[31m", "\\\x1b", "a\\b", "a\\\\b", "\\u202e", "\u202e", "\\", "\\xe9", "\udce9", "\x85"]
    texts += [char + "\\" + char for char in ACTING]
    seen = [shown(text) for text in texts]
    assert len(set(seen)) == len(texts)  # a literal "\x1b" is not ESC
    assert [_unshown(text) for text in seen] == texts
    # Text already escaped (a repr, printable's output) keeps its backslashes as they are.
    assert shown(repr("a\x1bb"), backslashes=False) == repr("a\x1bb")
    for text in texts:
        assert shown(shown(text), backslashes=False) == shown(text)


def test_shown_text_is_printable_and_well_formed_xml_for_every_code_point() -> None:
    spaces = {chr(c) for c in range(sys.maxunicode + 1) if unicodedata.category(chr(c)) == "Zs"}
    xml_forbidden = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
    for start in range(0, sys.maxunicode + 1, 0x10000):
        text = shown("".join(chr(c) for c in range(start, start + 0x10000)))
        assert xml_forbidden.search(text) is None
        assert "".join(ch for ch in set(text) if ch not in spaces).isprintable()
        text.encode("utf-8")  # no lone surrogate left


@pytest.mark.parametrize(
    "identifier", ["../../x", "/abs", "a" * 300, "a\0b", ".hidden", "x/../y", "tab\there", HASHED_PREFIX + "abc"]
)
def test_unsafe_ids_get_hashed_names(identifier: str, tmp_path: Path) -> None:
    name = safe_file_name(identifier)
    assert name.startswith(HASHED_PREFIX) and "/" not in name and len(name) < 64
    assert contained(tmp_path, name + ".png").parent == tmp_path
    assert safe_file_name(identifier) == name  # stable: a resume finds the same file


def test_plain_ids_keep_their_names() -> None:
    for identifier in ("promo/001", "boots/winter", "sale", "été/affiche-2"):
        assert safe_file_name(identifier) == identifier


@pytest.mark.parametrize(
    ("text", "words"), [("[" * 100_000 + "]" * 100_000, "nested too deeply"), ("9" * 5000, "cannot be parsed")]
)
def test_json_beyond_what_python_parses_is_a_clear_error(text: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        loads_json(text)
    with pytest.raises(json.JSONDecodeError):
        loads_json("{nope")


def test_walk_handles_trees_deeper_than_the_recursion_limit(tmp_path: Path) -> None:
    import sys

    from pixgate.safe_io import walk

    deep = tmp_path
    depth = sys.getrecursionlimit() + 200
    for _ in range(depth):  # one level at a time: pathlib and os.makedirs recurse too
        deep = deep / "d"
        deep.mkdir()
    (deep / "x.png").write_bytes(b"")
    (tmp_path / "link").symlink_to(tmp_path / "d")  # listed, not followed
    try:
        seen = list(walk(tmp_path))
        assert len(seen) == depth + 1
        assert set(seen[0][1]) == {"d", "link"}
        assert seen[-1][2] == ["x.png"]
    finally:
        remove_deep_tree(tmp_path)


def test_walk_matches_os_walk(tmp_path: Path) -> None:
    from pixgate.safe_io import walk

    for rel in ("a/b/c.png", "a/d.png", "e/f/g/h.png", "top.png"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    (tmp_path / "e" / "loop").symlink_to(tmp_path)

    def normal(walker: object) -> list[tuple[str, list[str], list[str]]]:
        return sorted((d, sorted(ds), sorted(fs)) for d, ds, fs in walker)  # type: ignore[attr-defined]

    assert normal(walk(tmp_path)) == normal(os.walk(tmp_path))


def test_a_hash_stops_at_its_limit_whatever_the_size_says() -> None:
    """/proc files say they hold 0 bytes and read without end: the limit counts what is read."""
    from pixgate.safe_io import UnsafeInputError, sha256_regular

    with pytest.raises(UnsafeInputError, match="more than the 1,048,576-byte limit"):
        sha256_regular(Path("/proc/self/pagemap"), 1 << 20)
