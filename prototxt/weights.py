"""Binary caffemodel weights: float32 numpy arrays keyed by layer name.

Reads V2 (``layer``), V1 (``layers``) and V0 (``layers { layer { ... } }``) nets; blobs with a
``shape`` or with the legacy num/channels/height/width; ``data`` (float) or ``double_data``.
The walk is done by :mod:`posebridge.prototxt.wire`, so a 209 MB file costs one read and one
copy of its floats.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from posebridge.errors import CaffemodelFormatError, LimitExceededError
from posebridge.limits import DEFAULT_LIMITS, Limits
from posebridge.prototxt import wire
from posebridge.prototxt.files import read_file_bytes

# Field numbers (BVLC caffe.proto).
_NET_LAYERS_V1, _NET_LAYER_V2, _NET_NAME = 2, 100, 1
_V2_NAME, _V2_TYPE, _V2_BLOBS = 1, 2, 7
_V1_NAME, _V1_TYPE, _V1_BLOBS, _V1_V0LAYER = 4, 5, 6, 1
_V0_NAME, _V0_TYPE, _V0_BLOBS = 1, 2, 50
_BLOB_NUM, _BLOB_CHANNELS, _BLOB_HEIGHT, _BLOB_WIDTH = 1, 2, 3, 4
_BLOB_DATA, _BLOB_SHAPE, _BLOB_DOUBLE_DATA = 5, 7, 8
_SHAPE_DIM = 1


@dataclass
class BlobRecord:
    """One stored blob: its array and how its shape was declared."""

    array: np.ndarray
    legacy_shape: bool


@dataclass
class Weights:
    """Weights read from a caffemodel: ``blobs[layer name]`` is a list of float32 arrays."""

    source: str
    format: str  # "V2", "V1" or "V0"
    blobs: dict[str, list[np.ndarray]]
    layer_types: dict[str, str]
    legacy_shaped: dict[str, list[bool]] = field(default_factory=dict)
    net_name: str = ""

    def __contains__(self, layer: str) -> bool:
        return layer in self.blobs

    def __getitem__(self, layer: str) -> list[np.ndarray]:
        return self.blobs[layer]

    @property
    def total_parameters(self) -> int:
        """Number of stored float values."""
        return sum(int(a.size) for arrays in self.blobs.values() for a in arrays)


#: Caffe's kMaxBlobAxes (blob.hpp).
MAX_BLOB_AXES = 32
#: Pieces of one blob's data (packed spans, runs of unpacked values): writers emit one.
MAX_DATA_PIECES = 4096
#: Blobs of one layer (Caffe's layers have at most 3).
MAX_BLOBS_PER_LAYER = 64
_PACKED, _RUN = "packed", "run"


def _unpacked_run(buf: memoryview, key_at: int, end: int, key: int, width: int) -> int:
    """How many consecutive one-byte-key records ``key, <width bytes>`` start at ``key_at``.

    Checked in growing numpy chunks, so a run costs time in proportion to its length.
    """
    record = 1 + width
    count, chunk = 0, 64
    while True:
        available = (end - key_at) // record - count
        take = min(chunk, available)
        if take <= 0:
            return count
        offset = key_at + count * record
        keys = np.frombuffer(buf[offset:offset + take * record], dtype=np.uint8)[::record]
        mismatch = np.flatnonzero(keys != key)
        if mismatch.size:
            return count + int(mismatch[0])
        count += take
        chunk *= 2


def _blob_fields(buf: memoryview, start: int, end: int):
    """wire.iter_fields over a BlobProto, with each run of unpacked float (or double) values as
    one ``(number, _RUN, start, stop)`` item spanning its records (Caffe writes them packed;
    other writers may not, and one Python step per value would cost seconds per megabyte)."""
    pos = start
    while pos < end:
        restart = None
        for number, wire_type, a, b in wire.iter_fields(buf, pos, end):
            unpacked = {(_BLOB_DATA, wire.FIXED32): 4, (_BLOB_DOUBLE_DATA, wire.FIXED64): 8}.get((number, wire_type))
            key = (number << 3) | wire_type
            if unpacked is not None and buf[a - 1] == key:
                count = _unpacked_run(buf, a - 1, end, key, unpacked)
                restart = a - 1 + count * (1 + unpacked)
                yield number, _RUN, a - 1, restart
                break
            yield number, wire_type, a, b
        if restart is None:
            return
        pos = restart


def _decode_blob(buf: memoryview, start: int, end: int, limits: Limits) -> BlobRecord:
    legacy = {_BLOB_NUM: None, _BLOB_CHANNELS: None, _BLOB_HEIGHT: None, _BLOB_WIDTH: None}
    dims: list[int] | None = None
    pieces: dict[int, list[tuple[str, int, int]]] = {_BLOB_DATA: [], _BLOB_DOUBLE_DATA: []}
    for number, wire_type, a, b in _blob_fields(buf, start, end):
        if number in legacy and wire_type == wire.VARINT:
            legacy[number] = wire.to_signed64(a)
        elif number == _BLOB_SHAPE and wire_type == wire.LENGTH_DELIMITED:
            dims = []
            for n2, w2, a2, b2 in wire.iter_fields(buf, a, b):
                if n2 != _SHAPE_DIM:
                    continue
                if w2 == wire.LENGTH_DELIMITED:
                    dims.extend(wire.to_signed64(v) for v in wire.read_packed_varints(buf, a2, b2))
                elif w2 == wire.VARINT:
                    dims.append(wire.to_signed64(a2))
                if len(dims) > MAX_BLOB_AXES:
                    raise wire.WireError(f"blob shape has more than {MAX_BLOB_AXES} axes", a)
        elif number in pieces and wire_type in (wire.LENGTH_DELIMITED, _RUN):
            pieces[number].append((_PACKED if wire_type == wire.LENGTH_DELIMITED else _RUN, a, b))
            if len(pieces[number]) > MAX_DATA_PIECES:
                raise wire.WireError(f"blob data split into more than {MAX_DATA_PIECES} pieces", a)

    legacy_shape = dims is None
    if dims is None:
        dims = [v if v is not None else 1 for v in legacy.values()]
        if all(v is None for v in legacy.values()):
            dims = []
    if any(d < 0 for d in dims):
        raise wire.WireError(f"negative blob dimension {dims}", start)
    count, extent = 1, 1  # extent: the product without zeros, which numpy also refuses to overflow
    for d in dims:
        count *= d
        extent *= max(d, 1)
        if extent > limits.max_blob_elements:
            raise LimitExceededError(f"a blob declares shape {dims}, over the limit of "
                                     f"{limits.max_blob_elements} elements")

    if pieces[_BLOB_DATA]:
        array = _gather(buf, pieces[_BLOB_DATA], 4, "<f4")
    elif pieces[_BLOB_DOUBLE_DATA]:
        array = _gather(buf, pieces[_BLOB_DOUBLE_DATA], 8, "<f8").astype(np.float32)
    else:
        array = np.zeros(0, dtype=np.float32)
    if array.size != count:
        if not dims and array.size:
            dims = [array.size]
        else:
            raise wire.WireError(
                f"blob holds {array.size} values but its shape {dims} needs {count}", start)
    return BlobRecord(array.reshape(dims), legacy_shape)


def _gather(buf: memoryview, pieces: list[tuple[str, int, int]], width: int, dtype: str) -> np.ndarray:
    arrays = []
    for kind, a, b in pieces:
        if kind == _PACKED:
            if (b - a) % width:
                raise wire.WireError(f"packed data of {b - a} bytes is not a multiple of {width}", a)
            arrays.append(np.frombuffer(buf[a:b], dtype=dtype))
        else:  # records of a one-byte key and ``width`` value bytes
            records = np.frombuffer(buf[a:b], dtype=np.uint8).reshape(-1, 1 + width)
            arrays.append(np.ascontiguousarray(records[:, 1:]).view(dtype).reshape(-1))
    array = arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
    return np.array(array, dtype=np.float32 if dtype == "<f4" else np.float64)  # own the memory


def _decode_layer(buf, start, end, fields, limits) -> tuple[str, str, list[BlobRecord]]:
    name_field, type_field, blobs_field = fields
    name, type_name, blobs = "", "", []
    for number, wire_type, a, b in wire.iter_fields(buf, start, end):
        if number == name_field and wire_type == wire.LENGTH_DELIMITED:
            name = wire.read_string(buf, a, b)
        elif number == type_field:
            type_name = wire.read_string(buf, a, b) if wire_type == wire.LENGTH_DELIMITED else f"V1:{a}"
        elif number == blobs_field and wire_type == wire.LENGTH_DELIMITED:
            if len(blobs) >= MAX_BLOBS_PER_LAYER:
                raise LimitExceededError(f"a layer holds more than {MAX_BLOBS_PER_LAYER} blobs")
            blobs.append(_decode_blob(buf, a, b, limits))
    return name, type_name, blobs


def parse_weights(data: bytes, *, source: str = "<bytes>", limits: Limits = DEFAULT_LIMITS) -> Weights:
    """Decode caffemodel bytes into :class:`Weights`; malformed bytes raise CaffemodelFormatError."""
    buf = memoryview(data)
    blobs: dict[str, list[np.ndarray]] = {}
    types: dict[str, str] = {}
    legacy: dict[str, list[bool]] = {}
    formats = set()
    net_name = ""
    last = None
    layer_count = 0
    try:
        for number, wire_type, a, b in wire.iter_fields(buf, 0, len(buf)):
            if wire_type != wire.LENGTH_DELIMITED:
                continue
            if number == _NET_NAME:
                net_name = wire.read_string(buf, a, b)
                continue
            if number == _NET_LAYER_V2:
                name, type_name, records = _decode_layer(buf, a, b, (_V2_NAME, _V2_TYPE, _V2_BLOBS), limits)
                formats.add("V2")
            elif number == _NET_LAYERS_V1:
                name, type_name, records = _decode_layer(buf, a, b, (_V1_NAME, _V1_TYPE, _V1_BLOBS), limits)
                v0 = [(x, y) for n, w, x, y in wire.iter_fields(buf, a, b) if n == _V1_V0LAYER and w == wire.LENGTH_DELIMITED]
                if v0:
                    name, type_name, records = _decode_layer(buf, *v0[0], (_V0_NAME, _V0_TYPE, _V0_BLOBS), limits)
                    formats.add("V0")
                else:
                    formats.add("V1")
            else:
                continue
            last = name
            layer_count += 1
            if layer_count > limits.max_layers:
                raise LimitExceededError(f"more than {limits.max_layers} layers", file=source)
            if records or name not in blobs:
                blobs[name] = [r.array for r in records]
                legacy[name] = [r.legacy_shape for r in records]
                types[name] = type_name
    except LimitExceededError as error:
        if error.file:
            raise
        where = f"after layer '{last}'" if last is not None else "in the first layer"
        raise LimitExceededError(f"{error.detail}, {where}", file=source) from None
    except wire.WireError as error:
        hint = " (it looks like prototxt text)" if last is None and _looks_like_text(data) else ""
        what = "not a valid caffemodel (truncated or corrupt)"
        if not hint and isinstance(error, wire.TruncatedError) and error.end == len(data):
            what = f"truncated caffemodel: the file ends inside a field after {len(data)} bytes (an incomplete download?)"
        raise CaffemodelFormatError(
            f"{what}{hint}: {error}, "
            + (f"after layer '{last}'" if last is not None else "before the first layer"),
            file=source) from None
    if not formats:
        hint = " (it looks like prototxt text)" if _looks_like_text(data) else ""
        raise CaffemodelFormatError(f"no layers found: not a caffemodel{hint}", file=source)
    return Weights(source=source, format="+".join(sorted(formats)), blobs=blobs, layer_types=types,
                   legacy_shaped=legacy, net_name=net_name)


def _looks_like_text(data: bytes) -> bool:
    head = data[:512]
    return bool(head) and all(32 <= c < 127 or c in (9, 10, 13) for c in head)


def read_weights(path: str | os.PathLike, *, limits: Limits = DEFAULT_LIMITS) -> Weights:
    """Read a caffemodel file's weights."""
    source = os.fspath(path)
    data = read_file_bytes(path, what="caffemodel", max_bytes=limits.max_caffemodel_bytes)
    return parse_weights(data, source=source, limits=limits)
