"""Does a caffemodel look complete? Its size against the weights its net must hold.

Caffe stores every learnable value as a 4-byte float (plus a few bytes of protobuf framing per
blob), so a complete caffemodel is never smaller than 4 bytes times the number of values its
net's learnable layers hold. A smaller file was cut off (an interrupted download: OpenPose's
issues are full of them) or belongs to another net. The count here is a lower bound: layers
whose blob shapes cannot be derived, and InnerProduct weights whose size depends on an input
size the prototxt does not state, count as zero.

:func:`verify_caffemodel` compares a file's MD5 with the official OpenPose weights (the MD5s
OpenPose publishes, held by :mod:`posebridge.zoo`) and explains a near miss.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from posebridge import zoo
from posebridge.errors import FileAccessError, PosebridgeError
from posebridge.prototxt.budget import FLOAT32_BYTES, shape_elements
from posebridge.prototxt.files import file_md5
from posebridge.prototxt.graph import Graph
from posebridge.prototxt.layer_types import layer_type
from posebridge.prototxt.loader import shapes_for_weights
from posebridge.prototxt.shapes import expected_blob_shapes
from posebridge.zoo import ZooEntry


def minimum_weight_values(graph: Graph) -> int:
    """A lower bound on the float values the net's learnable blobs hold (0 when unknown)."""
    try:
        shapes, spatial_known = shapes_for_weights(graph, None)
    except PosebridgeError:
        return 0
    total = 0
    for node in graph.nodes:
        entry = layer_type(node.type)
        if entry is None or not entry.blob_names:
            continue
        try:
            expected = expected_blob_shapes(node, [shapes.get(b) for b in node.bottoms])
        except PosebridgeError:
            continue
        for index, shape in enumerate(expected or ()):
            if node.type == "InnerProduct" and index == 0 and not spatial_known:
                continue  # its size follows the input size, which the prototxt leaves open
            total += shape_elements(shape)
    return total


def minimum_caffemodel_bytes(graph: Graph) -> int:
    """The fewest bytes a complete float32 caffemodel for ``graph`` can have."""
    return FLOAT32_BYTES * minimum_weight_values(graph)


def truncation_message(graph: Graph, size: int) -> str | None:
    """A sentence saying a caffemodel of ``size`` bytes is too small for ``graph``, or None."""
    needed = minimum_caffemodel_bytes(graph)
    if size >= needed:
        return None
    percent = 100.0 * size / needed
    return (f"the file is {size} bytes ({percent:.3g}% of the at least {needed} bytes that the "
            f"{needed // FLOAT32_BYTES} weights of this net need as float32): it looks truncated "
            f"(an incomplete download?) or made for another net")


def caffemodel_truncation(graph: Graph, caffemodel: str | os.PathLike) -> str | None:
    """:func:`truncation_message` for a caffemodel file (None when it cannot be sized)."""
    try:
        size = os.stat(caffemodel).st_size
    except OSError:
        return None
    return truncation_message(graph, size)


# ----------------------------------------------------------------------------- official weights

#: An alias kept for callers of the integrity API.
md5_of = file_md5


def official_weights(md5: str) -> tuple[ZooEntry, ...]:
    """The zoo nets whose official caffemodel has this MD5 (MPI's weights serve two nets)."""
    return tuple(entry for entry in zoo.ENTRIES if entry.weights_md5 == md5.lower())


def named_like_official(file_name: str) -> tuple[ZooEntry, ...]:
    """The zoo nets whose official caffemodel has this file name (e.g. ``pose_iter_440000.caffemodel``)."""
    return tuple(entry for entry in zoo.ENTRIES if entry.weights_file == file_name)


@dataclass(frozen=True)
class Verification:
    """What :func:`verify_caffemodel` found out about one file."""

    path: str
    size: int
    md5: str
    official: tuple[ZooEntry, ...]
    named_like: tuple[ZooEntry, ...]
    notes: tuple[str, ...]

    @property
    def known(self) -> bool:
        """True for one of the official OpenPose caffemodels, byte for byte."""
        return bool(self.official)


def verify_caffemodel(path: str | os.PathLike) -> Verification:
    """MD5 and size of a caffemodel against the official OpenPose weights.

    For a file that is not official but carries an official file name, ``notes`` say whether it
    is too small to hold that net's weights (truncated) or merely different (modified).
    Raises FileAccessError for a missing, unreadable or empty file.
    """
    source = os.fspath(path)
    try:
        size = os.stat(source).st_size
        if os.path.isdir(source):
            raise FileAccessError("expected a caffemodel file, found a folder", file=source)
        md5 = md5_of(source)
    except FileNotFoundError:
        raise FileAccessError("caffemodel not found", file=source) from None
    except OSError as error:
        raise FileAccessError(f"cannot read caffemodel: {error.strerror}", file=source) from None
    if size == 0:
        raise FileAccessError("caffemodel is empty (0 bytes)", file=source)
    official = official_weights(md5)
    named = () if official else named_like_official(os.path.basename(source))
    notes = []
    for entry in named:
        message = truncation_message(zoo.graph(entry.name), size)
        label = f"{zoo.ZOO_PREFIX}{entry.name}"
        if message:
            notes.append(f"named like the official {entry.title} weights of {label}, but {message}")
        else:
            notes.append(f"named like the official {entry.title} weights of {label} (MD5 {entry.weights_md5}), "
                         f"but its bytes differ: modified, re-saved or corrupted")
    return Verification(path=source, size=size, md5=md5, official=official, named_like=named, notes=tuple(notes))
