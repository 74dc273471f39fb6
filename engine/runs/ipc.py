"""Reading Arrow IPC data that comes from elsewhere, without trusting it.

A run file may arrive in a pull request. pyarrow reads what a file says: compressed
buffers are inflated to whatever size they claim (a few hundred kB can become
gigabytes), and buffers that point past their data are read as they point. So pixgate
reads an IPC file itself, block by block as its footer lists them (as pyarrow, polars and
duckdb do), and looks at each message's metadata before pyarrow materialises it:

- a record batch whose metadata names a body compression, or carries custom metadata
  (older writers asked for compression there, `ARROW:experimental_compression`), is
  refused: pixgate writes uncompressed files and reads only those;
- dictionary batches, and schemas with dictionary-encoded columns, are refused (no
  pixgate file has one);
- every batch is validated in full (offsets, lengths) before anything reads its values.

The message metadata is a flatbuffer (Arrow's format/Message.fbs and File.fbs); the few
fields needed are read directly, so no generated code is needed.
"""

from __future__ import annotations

import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

FILE_MAGIC = b"ARROW1"
_STREAM_START = 8  # the magic, padded to 8 bytes
_FOOTER_TAIL = 4 + len(FILE_MAGIC)  # int32 footer size, then the magic
_BLOCK_SIZE = 24  # struct Block { offset: long; metaDataLength: int; (pad) bodyLength: long }

# Field numbers in the flatbuffer tables read below.
_MESSAGE_HEADER = 2  # Message { version, header_type, header, bodyLength, custom_metadata }
_MESSAGE_CUSTOM_METADATA = 4
_RECORD_BATCH_COMPRESSION = 3  # RecordBatch { length, nodes, buffers, compression, ... }
_FOOTER_RECORD_BATCHES = 3  # Footer { version, schema, dictionaries, recordBatches, ... }
_FOOTER_DICTIONARIES = 2


class UnsafeIpcError(ValueError):
    """Arrow IPC data pixgate will not read (compressed, dictionary-encoded, malformed),
    with the reason."""


def _u16(data: memoryview, at: int) -> int:
    return int(struct.unpack_from("<H", data, at)[0])


def _u32(data: memoryview, at: int) -> int:
    return int(struct.unpack_from("<I", data, at)[0])


def _field(data: memoryview, table: int, index: int) -> int:
    """Position of field `index` of the flatbuffer table at `table`, or 0 when absent."""
    vtable = table - int(struct.unpack_from("<i", data, table)[0])
    slot = 4 + 2 * index
    offset = _u16(data, vtable + slot) if slot < _u16(data, vtable) else 0
    return table + offset if offset else 0


def _table(data: memoryview, at: int) -> int:
    """The table an offset field at `at` points to."""
    return at + _u32(data, at)


def _message_flags(metadata: memoryview) -> tuple[bool, bool]:
    """(names a body compression, carries custom metadata) for a message's flatbuffer."""
    root = _u32(metadata, 0)
    custom = bool(_field(metadata, root, _MESSAGE_CUSTOM_METADATA))
    header = _field(metadata, root, _MESSAGE_HEADER)
    compressed = bool(header and _field(metadata, _table(metadata, header), _RECORD_BATCH_COMPRESSION))
    return compressed, custom


def _blocks(data: memoryview, field: int, source: object) -> list[tuple[int, int, int]]:
    """(offset, metadata length, body length) of each block a file's footer lists."""
    size = len(data)
    footer_length = int(struct.unpack_from("<i", data, size - _FOOTER_TAIL)[0])
    start = size - _FOOTER_TAIL - footer_length
    if footer_length <= 0 or start < _STREAM_START:
        raise UnsafeIpcError(f"{source}: a footer of {footer_length} bytes does not fit the file")
    footer = data[start : size - _FOOTER_TAIL]
    root = _u32(footer, 0)
    vector = _field(footer, root, field)
    if not vector:
        return []
    vector = _table(footer, vector)
    count = _u32(footer, vector)
    if vector + 4 + count * _BLOCK_SIZE > len(footer):
        raise UnsafeIpcError(f"{source}: the footer lists {count} blocks it cannot hold")
    out = []
    for i in range(count):
        at = vector + 4 + i * _BLOCK_SIZE
        offset, meta_length, _pad, body_length = struct.unpack_from("<qiiq", footer, at)
        if offset < _STREAM_START or meta_length <= 0 or body_length < 0 or offset + meta_length + body_length > start:
            raise UnsafeIpcError(f"{source}: block {i} of the footer points outside the file's data")
        out.append((offset, meta_length, body_length))
    return out


def _checked_batch(message: pa.Message, schema: pa.Schema, source: object) -> pa.RecordBatch:
    """A record batch message, its metadata checked before pyarrow reads it, then validated."""
    import pyarrow as pa

    if message.type != "record batch":
        raise UnsafeIpcError(f"{source}: holds a {message.type} message; a pixgate file holds record batches only")
    compressed, custom = _message_flags(memoryview(message.metadata))
    if compressed or custom:
        raise UnsafeIpcError(
            f"{source}: its record batches are compressed (or carry metadata older writers used to ask for "
            "compression); pixgate reads only uncompressed files, since inflating data from elsewhere could take "
            "any amount of memory: write it uncompressed"
        )
    batch = pa.ipc.read_record_batch(message, schema)
    batch.validate(full=True)
    return batch


def _check_schema(schema: pa.Schema, source: object) -> None:
    import pyarrow as pa

    for f in schema:
        if pa.types.is_dictionary(f.type):
            raise UnsafeIpcError(f"{source}: column {f.name!r} is dictionary-encoded; no pixgate file has one")


def read_file(data: pa.Buffer, source: object) -> pa.Table:
    """The table of an Arrow IPC file held in `data` (e.g. memory-mapped), read safely.

    Raises:
        UnsafeIpcError: Compressed or dictionary data, or a footer that does not fit.
        ValueError: Not an Arrow IPC file, or a message or batch that does not read.
    """
    import pyarrow as pa

    view = memoryview(data)
    if len(view) < _STREAM_START + _FOOTER_TAIL or bytes(view[: len(FILE_MAGIC)]) != FILE_MAGIC:
        raise ValueError(f"{source}: not an Arrow IPC file (no ARROW1 magic bytes)")
    if bytes(view[-len(FILE_MAGIC) :]) != FILE_MAGIC:
        raise ValueError(f"{source}: not a complete Arrow IPC file (no ARROW1 magic bytes at its end)")
    try:
        schema = pa.ipc.open_file(data).schema  # the footer and schema only: no batch is read
        _check_schema(schema, source)
        if _blocks(view, _FOOTER_DICTIONARIES, source):
            raise UnsafeIpcError(f"{source}: holds dictionary batches; no pixgate file has one")
        batches = []
        for offset, meta_length, body_length in _blocks(view, _FOOTER_RECORD_BATCHES, source):
            message = pa.ipc.read_message(pa.BufferReader(data.slice(offset, meta_length + body_length)))
            batches.append(_checked_batch(message, schema, source))
    except (struct.error, IndexError) as exc:
        raise UnsafeIpcError(f"{source}: malformed Arrow metadata ({exc})") from None
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(f"{source}: not a readable Arrow IPC file: {exc}") from None
    return pa.Table.from_batches(batches, schema=schema)


def read_stream(data: pa.Buffer, source: object, *, torn_tail_ok: bool) -> tuple[pa.Schema, list[pa.RecordBatch]]:
    """The schema and record batches of an Arrow IPC stream, each message checked.

    Args:
        data: The stream's bytes.
        source: Where they came from, for messages.
        torn_tail_ok: Stop quietly at a message that does not read (a journal cut by a
            kill) instead of raising.

    Raises:
        UnsafeIpcError: Compressed or dictionary data.
        ValueError: No readable schema (and, unless `torn_tail_ok`, any message that does
            not read).
    """
    import pyarrow as pa

    reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(data))
    try:
        schema = pa.ipc.read_schema(reader.read_next_message())
    except (pa.ArrowException, OSError, StopIteration, TypeError) as exc:
        raise ValueError(f"{source}: no readable Arrow schema: {exc}") from None
    _check_schema(schema, source)
    batches = []
    while True:
        try:
            message = reader.read_next_message()
        except StopIteration:
            break
        except (pa.ArrowException, OSError) as exc:
            if torn_tail_ok:
                break  # the torn last message of a killed run
            raise ValueError(f"{source}: unreadable Arrow message: {exc}") from None
        try:
            batches.append(_checked_batch(message, schema, source))
        except (struct.error, IndexError) as exc:
            raise UnsafeIpcError(f"{source}: malformed Arrow metadata ({exc})") from None
        except (pa.ArrowException, OSError) as exc:
            if torn_tail_ok:
                break
            raise ValueError(f"{source}: unreadable Arrow record batch: {exc}") from None
    return schema, batches


__all__ = ["FILE_MAGIC", "UnsafeIpcError", "read_file", "read_stream"]
