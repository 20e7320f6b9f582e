"""Does a caffemodel look complete? Its size against the weights its net must hold.

Caffe stores every learnable value as a 4-byte float (plus a few bytes of protobuf framing per
blob), so a complete caffemodel is never smaller than 4 bytes times the number of values its
net's learnable layers hold. A smaller file was cut off (an interrupted download: OpenPose's
issues are full of them) or belongs to another net. The count here is a lower bound: layers
whose blob shapes cannot be derived, and InnerProduct weights whose size depends on an input
size the prototxt does not state, count as zero.
"""

from __future__ import annotations

import os

from posebridge.errors import PosebridgeError
from posebridge.prototxt.budget import FLOAT32_BYTES, shape_elements
from posebridge.prototxt.graph import Graph
from posebridge.prototxt.layer_types import layer_type
from posebridge.prototxt.loader import shapes_for_weights
from posebridge.prototxt.shapes import expected_blob_shapes


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
    return (f"the file is {size} bytes ({percent:.1f}% of the at least {needed} bytes that the "
            f"{needed // FLOAT32_BYTES} weights of this net need as float32): it looks truncated "
            f"(an incomplete download?) or made for another net")


def caffemodel_truncation(graph: Graph, caffemodel: str | os.PathLike) -> str | None:
    """:func:`truncation_message` for a caffemodel file (None when it cannot be sized)."""
    try:
        size = os.stat(caffemodel).st_size
    except OSError:
        return None
    return truncation_message(graph, size)
