"""A bounds-checked reader of the protobuf wire format, for walking large caffemodels.

Protobuf's own parser copies every float of a 200 MB caffemodel into a message, and turning
those into numpy costs seconds. This reader walks only the structure (layers, blobs) and
hands back the byte spans of the packed float data, which numpy then reads without copying.
Every malformed input raises :class:`WireError` with the byte offset.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH_DELIMITED, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5


class WireError(ValueError):
    """Malformed protobuf bytes; ``offset`` is where reading failed."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


class TruncatedError(WireError):
    """Bytes that stop inside a field; ``end`` is the end of the region being read (the file's
    length when the region is the whole file: the file itself was cut short)."""

    def __init__(self, message: str, offset: int, end: int) -> None:
        super().__init__(message, offset)
        self.end = end


def read_varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    """Decode a varint starting at ``pos``; returns (value, next position)."""
    result = 0
    shift = 0
    start = pos
    while True:
        if pos >= end:
            raise TruncatedError("truncated varint", start, end)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes", start)


def iter_fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """Yield (field number, wire type, value or payload start, payload end) for one message.

    For VARINT fields the third item is the value and the fourth is unused (-1); for
    LENGTH_DELIMITED, FIXED32 and FIXED64 it is the payload's byte span.
    """
    pos = start
    while pos < end:
        key_at = pos
        key, pos = read_varint(buf, pos, end)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError("field number 0", key_at)
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield number, wire_type, value, -1
        elif wire_type == LENGTH_DELIMITED:
            length, pos = read_varint(buf, pos, end)
            if length > end - pos:
                raise TruncatedError(f"field {number} claims {length} bytes, only {end - pos} remain", key_at, end)
            yield number, wire_type, pos, pos + length
            pos += length
        elif wire_type == FIXED32:
            if pos + 4 > end:
                raise TruncatedError("truncated fixed32", key_at, end)
            yield number, wire_type, pos, pos + 4
            pos += 4
        elif wire_type == FIXED64:
            if pos + 8 > end:
                raise TruncatedError("truncated fixed64", key_at, end)
            yield number, wire_type, pos, pos + 8
            pos += 8
        else:
            raise WireError(f"unsupported wire type {wire_type} for field {number}", key_at)


def read_packed_varints(buf: memoryview, start: int, end: int) -> list[int]:
    """Decode a packed repeated varint field's payload."""
    values = []
    pos = start
    while pos < end:
        value, pos = read_varint(buf, pos, end)
        values.append(value)
    return values


def to_signed64(value: int) -> int:
    """Interpret an unsigned varint as a two's-complement int64 (protobuf int64 encoding)."""
    return value - (1 << 64) if value >= (1 << 63) else value


def read_string(buf: memoryview, start: int, end: int) -> str:
    """Decode a length-delimited UTF-8 string payload (invalid bytes replaced)."""
    return bytes(buf[start:end]).decode("utf-8", errors="replace")


def encode_varint(value: int) -> bytes:
    """Encode a non-negative integer (or an int64, two's complement) as a varint."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def encode_length_delimited(number: int, payload: bytes) -> bytes:
    """A LENGTH_DELIMITED field: key, length, payload."""
    return encode_varint((number << 3) | LENGTH_DELIMITED) + encode_varint(len(payload)) + payload
