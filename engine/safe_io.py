"""Files, paths and text that come from data nobody controls.

Images, manifests, run files, golden folders and staging plans arrive in pull requests
and from generators. Everything pixgate reads or writes because such data names it goes
through here:

- `read_regular` reads only regular files, checks the size before reading and never
  reads more than it allows: a FIFO, a device, a socket, a folder or a symlink loop is an
  `UnsafeInputError` naming the problem, never a hang or unbounded memory;
- `contained` joins a relative path from data to the folder it belongs to, refusing
  absolute paths, `..`, and symlinks that lead out;
- `name_id` turns a file name into a lossless, documented id that can be written to Arrow
  and shown, even when the name is not valid UTF-8; `printable` does the same for text
  that is only shown (messages, paths);
- `shown` escapes what would act rather than show (control characters, bidirectional
  overrides) in names and messages written to a terminal, a CI log, Markdown or XML;
- `safe_file_name` maps an id to a file name that stays in its folder (hashed when the id
  is unsafe or too long);
- `loads_json` parses JSON with a clear error for nesting or numbers too large to parse;
- `write_new` creates a file anew, never writing through a link left where it goes.

Depends on the standard library and `pixgate.config` only.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import stat
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

from pixgate.config import TEXT_INPUT_MAX_BYTES

#: Longest id used as a file name as it is, in UTF-8 bytes (a segment, and the whole
#: relative path): common filesystems allow 255 bytes per name, and the name also gets an
#: extension and, while it is written, a suffix.
SAFE_SEGMENT_BYTES = 120
SAFE_PATH_BYTES = 400
#: Hashed names start with this; an id that looks like one is hashed itself, so a plain
#: id can never take a hashed id's file.
HASHED_PREFIX = "_id-"
_CHUNK = 1 << 20


class UnsafeInputError(ValueError):
    """A file or path from data that pixgate refuses to use; the message says why."""


#: Errors of writing that are the machine's, not pixgate's nor the input's: reported in
#: one line naming the file (exit 2), never as an internal error.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG, errno.EIO, errno.EACCES})


class OutputError(Exception):
    """A file pixgate writes could not be written (disk full, read-only, no permission).

    Attributes:
        path: The file.
        reason: The system's words for the failure.
    """

    def __init__(self, path: Path, reason: str, hint: str = "write elsewhere") -> None:
        super().__init__(f"cannot write {printable(str(path))}: {reason}")
        self.path = path
        self.reason = reason
        self.hint = hint


#: What to do about a failed write, by its errno: a full disk is not a read-only folder.
_WRITE_HINTS = {
    errno.ENOSPC: "free space, or write elsewhere",
    errno.EDQUOT: "free space within your quota, or write elsewhere",
    errno.EFBIG: "write to a file system that takes files this large",
    errno.EROFS: "the file system is read-only: write elsewhere",
    errno.EACCES: "no permission to write there: write elsewhere, or change the folder's permissions",
    errno.EPERM: "no permission to write there: write elsewhere, or change the folder's permissions",
    errno.EISDIR: "name a file, not a folder",
}
#: The hint for an output path that holds a device, FIFO, socket or folder.
SPECIAL_OUTPUT_HINT = "name a regular file (or '-' for standard output, where the option takes it)"
#: The hint for an output path that is one of the command's inputs.
SAME_FILE_HINT = "write to another file"


def write_hint(code: int | None) -> str:
    """What to do about a write that failed with errno `code`."""
    return _WRITE_HINTS.get(code or 0, "write elsewhere")


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn an `OSError` raised while writing `path` into an `OutputError` naming it."""
    try:
        yield
    except OutputError:
        raise
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else (exc.strerror or str(exc))
        raise OutputError(path, reason, write_hint(exc.errno)) from None


def file_kind(mode: int) -> str:
    """What a file of `mode` (from stat or lstat) is, in a few words for a message:
    "a folder", "a FIFO (named pipe)", "a character device", ..."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    return "not a regular file"


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "a symlink loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOENT:
        return "no such file (or a symlink to nothing)"
    return exc.strerror or str(exc)


#: Why a file read without following links is refused when a symlink is there.
_SYMLINK_REFUSED = "a symlink, not a regular file (not followed)"


def not_regular(path: Path) -> str | None:
    """Why `path` (symlinks followed) cannot be read as a file, in a few words; None when
    it is a regular file."""
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError) as exc:
        return _describe(exc) if isinstance(exc, OSError) else str(exc)
    return None if stat.S_ISREG(mode) else f"{file_kind(mode)}, not a regular file"


def open_regular(path: Path, *, follow_links: bool = True) -> int:
    """Open a regular file for reading without blocking on a FIFO; returns the descriptor.

    The type is checked before the file is opened (opening some devices has side effects)
    and again on the open descriptor (the path may have been swapped in between).

    Args:
        path: The file.
        follow_links: False: a symlink at `path` itself is refused, never followed (its
            type is checked with lstat and the file opened with O_NOFOLLOW), for a file
            that something untrusted wrote.

    Raises:
        UnsafeInputError: Not there, not a regular file, a symlink where links are not
            followed, or not readable.
    """
    try:
        before = os.stat(path) if follow_links else os.lstat(path)
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        raise UnsafeInputError(_describe(exc) if isinstance(exc, OSError) else str(exc)) from None
    if stat.S_ISLNK(before.st_mode):
        raise UnsafeInputError(_SYMLINK_REFUSED)
    if not stat.S_ISREG(before.st_mode):
        raise UnsafeInputError(f"{file_kind(before.st_mode)}, not a regular file")
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC | (0 if follow_links else os.O_NOFOLLOW)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if not follow_links and exc.errno == errno.ELOOP:  # a link swapped in since the lstat
            raise UnsafeInputError(_SYMLINK_REFUSED) from None
        raise UnsafeInputError(_describe(exc)) from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise UnsafeInputError(f"{file_kind(mode)}, not a regular file")
    os.set_blocking(fd, True)
    return fd


def read_regular(path: Path, max_bytes: int, *, follow_links: bool = True) -> bytes:
    """The bytes of a regular file of at most `max_bytes` (`follow_links` as `open_regular`).

    Raises:
        UnsafeInputError: Not a readable regular file, or larger than `max_bytes`
            (checked before reading, and again while reading a file that grows).
    """
    fd = open_regular(path, follow_links=follow_links)
    try:
        size = os.fstat(fd).st_size
        if size > max_bytes:
            raise UnsafeInputError(f"{size:,} bytes, over the {max_bytes:,}-byte limit for this file")
        chunks, total = [], 0
        while True:
            chunk = os.read(fd, min(_CHUNK, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > max_bytes:
                raise UnsafeInputError(f"grew past the {max_bytes:,}-byte limit for this file while being read")
        return b"".join(chunks)
    except OSError as exc:
        raise UnsafeInputError(_describe(exc)) from None
    finally:
        os.close(fd)


def read_text(path: Path, max_bytes: int = TEXT_INPUT_MAX_BYTES) -> str:
    """A regular file's text, read as `read_regular` reads and decoded as UTF-8.

    Raises:
        UnsafeInputError: Not a readable regular file, too large, or not UTF-8.
    """
    data = read_regular(path, max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UnsafeInputError(f"not UTF-8 text ({exc})") from None


def check_output(path: Path, inputs: Iterable[Path] = ()) -> None:
    """Refuse to write `path` when something other than a regular file is there, or when
    it is one of the command's `inputs`.

    A device, FIFO, socket or folder at an output path (`/dev/null`, say) would be
    replaced by a regular file when the output is renamed over it, or written through;
    neither is what anyone asked for. A symlink is judged by what it points to: a link to
    a device is refused, a link to a regular file or to nothing may be replaced. An input
    is matched by device and inode, so another spelling of its path, or a hard link to
    it, is caught before the input is lost. Call it before anything is written for the
    output, so no side file appears beside it.

    Raises:
        OutputError: Something other than a regular file is at `path`, a symlink loop, or
            one of `inputs`.
    """
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        if isinstance(exc, OSError) and exc.errno == errno.ENOTDIR:
            return  # a parent is not a folder: the write itself says so, naming the file
        raise OutputError(path, _describe(exc) if isinstance(exc, OSError) else str(exc)) from None
    if not stat.S_ISREG(found.st_mode):
        raise OutputError(path, f"{file_kind(found.st_mode)} is there, not a regular file", SPECIAL_OUTPUT_HINT)
    for source in inputs:
        try:
            other = os.stat(source)
        except (OSError, ValueError):
            continue  # an input that is not there cannot be overwritten
        if (other.st_dev, other.st_ino) == (found.st_dev, found.st_ino):
            raise OutputError(
                path, f"it is the input {printable(str(source))}; writing it would destroy what is read", SAME_FILE_HINT
            )


def write_new(path: Path, data: bytes, *, sync: bool = False) -> None:
    """Create `path` anew with `data`: whatever is there (a link someone left, say) is
    removed first, and the file is created exclusively, never through a link.

    Args:
        path: The file.
        data: Its bytes.
        sync: fsync it before returning (before a rename makes it visible).
    """
    path.unlink(missing_ok=True)
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644), "wb") as fh:
        fh.write(data)
        if sync:
            fh.flush()
            os.fsync(fh.fileno())


#: Folder fsyncs that a file system may refuse (some network and FUSE mounts, a folder
#: without read permission): the rename is done by then, only its durability is unknown.
_DIR_FSYNC_REFUSED = frozenset({errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES, errno.EPERM})


def fsync_dir(path: Path) -> None:
    """Make a folder's entries (a rename into it, a new file) durable, where the file
    system allows it.

    Raises:
        OSError: The fsync failed for another reason than the file system refusing it.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        if exc.errno in _DIR_FSYNC_REFUSED:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in _DIR_FSYNC_REFUSED:
            raise
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes | Callable[[BinaryIO], None]) -> None:
    """Replace `path` with `data`, atomically and durably: the one way pixgate writes a
    whole file (run files, verdicts, reports, golden manifests, captured images).

    The bytes go to a new hidden file beside it (`.NAME.RANDOM.tmp`, created
    exclusively, never through a link, and never a name that is there already: a fixed
    name would remove whatever a user keeps there, an input included), are fsynced,
    renamed over `path` (a link at `path` is replaced, not written through), and the
    folder is fsynced: a crash leaves the old file or the new one, never a torn one, and
    no temporary file is left behind on failure (a kill -9 may leave the hidden file).

    Args:
        path: The file.
        data: Its bytes, or a function that writes them to the open file (a large file
            is then never held in memory whole).

    Raises:
        OutputError: Something other than a regular file is at `path` (`check_output`).
        OSError: The file could not be written (`writing` turns it into an
            `OutputError` naming the file, where the caller wants that).
    """
    check_output(path)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        with os.fdopen(fd, "wb") as fh:
            if callable(data):
                data(fh)
            else:
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    fsync_dir(path.parent)


def sha256_regular(path: Path, max_bytes: int | None = None) -> str:
    """sha256 of a regular file's bytes, read in chunks.

    Raises:
        UnsafeInputError: Not a readable regular file, or larger than `max_bytes`.
    """
    fd = open_regular(path)
    digest = hashlib.sha256()
    size = os.fstat(fd).st_size
    if max_bytes is not None and size > max_bytes:
        os.close(fd)
        raise UnsafeInputError(f"{size:,} bytes, over the {max_bytes:,}-byte limit for this file")
    read = 0
    try:
        while chunk := os.read(fd, _CHUNK):
            read += len(chunk)
            # A file can hold more than its size says (/proc files say 0): the read stops.
            if max_bytes is not None and read > max_bytes:
                raise UnsafeInputError(f"more than the {max_bytes:,}-byte limit for this file")
            digest.update(chunk)
    except OSError as exc:
        raise UnsafeInputError(_describe(exc)) from None
    finally:
        os.close(fd)
    return digest.hexdigest()


def _resolve(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise UnsafeInputError(f"{path}: cannot resolve it ({exc})") from None


def check_relative(rel: str) -> None:
    """Refuse a relative path from data that could name something outside its folder.

    Raises:
        UnsafeInputError: Not a string, empty, absolute, with a `..` or empty segment, a
            NUL byte or a backslash.
    """
    if not isinstance(rel, str) or not rel:
        raise UnsafeInputError(f"{rel!r} is not a relative path")
    if "\0" in rel or "\\" in rel:
        raise UnsafeInputError(f"{rel!r} holds a NUL byte or a backslash")
    if rel.startswith("/"):
        raise UnsafeInputError(f"{rel!r} is an absolute path")
    if any(part in ("", ".", "..") for part in rel.split("/")):
        raise UnsafeInputError(f"{rel!r} has an empty, '.' or '..' segment")


def contained(root: Path, rel: str) -> Path:
    """`root / rel`, checked to stay inside `root`.

    `rel` must pass `check_relative`, and the joined path, with every symlink that exists
    along it followed, must lie inside `root` (itself resolved).

    Raises:
        UnsafeInputError: The path could lead outside `root`.
    """
    check_relative(rel)
    joined = root / rel
    base, real = _resolve(root), _resolve(joined)
    if real != base and base not in real.parents:
        raise UnsafeInputError(f"{rel!r} leads outside {root} (to {real})")
    return joined


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, symlinks followed, lies inside `root` (symlinks followed)."""
    try:
        real, base = _resolve(path), _resolve(root)
    except UnsafeInputError:
        return False
    return real == base or base in real.parents


def _escaped(text: str) -> str:
    out = []
    for char in text:
        code = ord(char)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8, as os.fsdecode gives it
            out.append(f"\\x{code - 0xDC00:02x}")
        elif 0xD800 <= code <= 0xDFFF:  # a lone surrogate given directly (JSON escapes)
            out.append(f"\\u{code:04x}")
        elif char == "\\":
            out.append("\\\\")
        else:
            out.append(char)
    return "".join(out)


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def printable(text: str) -> str:
    """`text` as it is when it is valid Unicode; else an escaped form that can be written to
    Arrow and shown: each byte of a file name that is not UTF-8 (a lone surrogate, as
    Python gives it) as `\\xNN`, another lone surrogate as `\\uNNNN`, backslashes doubled.

    For messages and paths; ids use `name_id`, which is lossless.
    """
    return text if _encodable(text) else _escaped(text)


def name_id(text: str) -> str:
    """A lossless, printable id for a relative file name (a `pair_id`).

    A name that is valid UTF-8 and holds no backslash is its own id. Otherwise each byte
    that is not part of valid UTF-8 is written `\\xNN` (two hex digits) and each backslash
    is doubled, so that no two names share an id and the bytes can always be recovered
    (`caf<0xE9>.png` gives `caf\\xe9.png`; a name holding `a\\b` gives `a\\\\b`).
    """
    return text if "\\" not in text and _encodable(text) else _escaped(text)


def shown(text: str, *, backslashes: bool = True) -> str:
    """`text` as it may be shown on a terminal, in a CI log, a Markdown file or XML: every
    character that would act rather than show is written as an escape.

    Escaped are the characters Python does not call printable, spaces apart: control
    characters (ESC, BEL, CR, line breaks, DEL, the C1 controls), format characters
    (the bidirectional overrides and isolates U+202A-202E and U+2066-2069, zero-width
    ones), line and paragraph separators, surrogates, private-use and unassigned code
    points (U+FFFE included). A control character below U+0080, and a byte that is not
    UTF-8 (a lone surrogate, as `os.fsdecode` gives it), is written `\\xNN`, as
    `name_id` writes bytes; any other escaped character `\\uNNNN`, or `\\UNNNNNNNN`
    beyond U+FFFF. The result holds only characters that XML 1.0 allows.

    Args:
        text: The text: a pair id, a file name, a message.
        backslashes: Double every backslash, so that an escape is never confused with
            text that looks like one (`shown("\\x1b")` and `shown(chr(27))` differ, and
            the text can be recovered). False for text whose backslashes already are
            escapes (a `repr`, `printable`'s output, a message built of them); such text
            is then left as it is when it has nothing else to escape.
    """
    if text.isprintable() and ("\\" not in text or not backslashes):
        return text
    out = []
    for char in text:
        if char == "\\":
            out.append("\\\\" if backslashes else char)
        elif char.isprintable() or unicodedata.category(char) == "Zs":
            out.append(char)
        else:
            code = ord(char)
            if code < 0x80:
                out.append(f"\\x{code:02x}")
            elif 0xDC80 <= code <= 0xDCFF:
                out.append(f"\\x{code - 0xDC00:02x}")
            elif code <= 0xFFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    return "".join(out)


#: The escapes `name_id` writes into an id: a doubled backslash, a byte that is not UTF-8
#: as `\xNN` (0x80 and up), a lone surrogate as `\uNNNN`.
_ID_ESCAPE = re.compile(r"\\(?:\\|x[89a-f][0-9a-f]|ud[89a-f][0-9a-f]{2})")


def check_pair_id(pair_id: str) -> None:
    """Refuse an id that `name_id` cannot have made from a relative path inside its folder
    (a row of a run file or journal from elsewhere): its escapes stand for a name's bytes,
    and the rest must pass `check_relative`.

    Raises:
        UnsafeInputError: An absolute path, a `..`, `.` or empty segment, a NUL byte, or a
            backslash that is not one of `name_id`'s escapes.
    """
    check_relative(_ID_ESCAPE.sub("_", pair_id) if isinstance(pair_id, str) else pair_id)


def walk(top: Path, onerror: Callable[[OSError], None] | None = None) -> Iterator[tuple[str, list[str], list[str]]]:
    """`os.walk(top, onerror=onerror)` without recursion: a tree from data may be nested
    deeper than Python's recursion limit (os.walk recurses before Python 3.12).

    Top-down and depth-first as `os.walk`; links to folders are listed in the folder
    names but not followed; sorting or removing folder names in place prunes the walk.
    """
    stack = [os.fspath(top)]
    while stack:
        folder = stack.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as exc:
            if onerror is not None:
                onerror(exc)
            continue
        dirs: list[str] = []
        files: list[str] = []
        links: set[str] = set()
        for entry in entries:
            try:
                is_dir = entry.is_dir()
                if is_dir and entry.is_symlink():
                    links.add(entry.name)
            except OSError:
                is_dir = False
            (dirs if is_dir else files).append(entry.name)
        yield folder, dirs, files
        stack.extend(os.path.join(folder, d) for d in reversed(dirs) if d not in links)


def remove_tree(root: Path) -> None:
    """`shutil.rmtree` without recursion (a tree from data may be nested deeper than the
    recursion limit); links are removed, never followed."""
    folders = []
    for folder, dirs, files in walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(folder, d))]:
            os.unlink(os.path.join(folder, name))
        folders.append(folder)
    for folder in reversed(folders):
        os.rmdir(folder)


def _plain_segment(segment: str) -> bool:
    if not segment or segment in (".", "..") or segment.startswith("."):
        return False
    if len(segment.encode("utf-8", "surrogatepass")) > SAFE_SEGMENT_BYTES:
        return False
    return all(ch.isprintable() and ch not in '\\:*?"<>|' for ch in segment)


def safe_file_name(identifier: str, reserved: tuple[str, ...] = ()) -> str:
    """A relative file name (without extension) for an id from data.

    The id itself when every `/`-separated segment is a plain name (printable, not
    hidden, no `..`, no characters that some filesystems refuse, short enough) and its
    first segment does not start with one of `reserved` (the folder's own files);
    otherwise `_id-` and the first 32 hex digits of the id's sha256.
    """
    try:
        size = len(identifier.encode("utf-8"))
    except UnicodeEncodeError:
        size = SAFE_PATH_BYTES + 1
    if (
        size <= SAFE_PATH_BYTES
        and not identifier.casefold().startswith(tuple(r.casefold() for r in (HASHED_PREFIX, *reserved)))
        and all(_plain_segment(s) for s in identifier.split("/"))
    ):
        return identifier
    digest = hashlib.sha256(identifier.encode("utf-8", "surrogatepass")).hexdigest()
    return HASHED_PREFIX + digest[:32]


def loads_json(text: str | bytes) -> Any:
    """`json.loads` with an error for input nested or numbered beyond what Python parses.

    Raises:
        ValueError: Not JSON (a `json.JSONDecodeError`), nested too deeply, or a number
            with more digits than Python converts.
    """
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("nested too deeply to parse") from None
    except json.JSONDecodeError:
        raise
    except ValueError as exc:  # e.g. an integer beyond sys.get_int_max_str_digits()
        raise ValueError(f"a value cannot be parsed ({exc})") from None


__all__ = [
    "HASHED_PREFIX",
    "SPECIAL_OUTPUT_HINT",
    "WRITE_ERRNOS",
    "OutputError",
    "UnsafeInputError",
    "atomic_write",
    "check_output",
    "check_pair_id",
    "check_relative",
    "contained",
    "file_kind",
    "fsync_dir",
    "inside",
    "loads_json",
    "name_id",
    "not_regular",
    "open_regular",
    "printable",
    "read_regular",
    "read_text",
    "remove_tree",
    "safe_file_name",
    "sha256_regular",
    "shown",
    "walk",
    "write_hint",
    "write_new",
    "writing",
]
