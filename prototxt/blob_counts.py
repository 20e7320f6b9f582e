"""How many bottoms and tops each Caffe layer type takes, as Caffe's Layer::CheckBlobCounts checks.

Facts from BVLC Caffe's layer headers (include/caffe/layers/*.hpp: ExactNumBottomBlobs,
MinBottomBlobs, MaxBottomBlobs, the same for tops, EqualNumBottomTopBlobs). A net that breaks
them would fail in Caffe's Net::Init; posebridge refuses it with a ShapeError naming the layer
instead of failing later inside a converted module.
"""

from __future__ import annotations

from dataclasses import dataclass

from posebridge.errors import ShapeError
from posebridge.prototxt.graph import Node

ANY = None


@dataclass(frozen=True)
class BlobCounts:
    """Allowed bottom and top counts (``None``: no bound); ``equal``: as many tops as bottoms."""

    min_bottoms: int | None = ANY
    max_bottoms: int | None = ANY
    min_tops: int | None = ANY
    max_tops: int | None = ANY
    equal: bool = False


_ONE_TO_ONE = BlobCounts(1, 1, 1, 1)
_NEURONS = ("ReLU", "PReLU", "ELU", "Sigmoid", "TanH", "AbsVal", "Power", "Exp", "Log", "BNLL", "Threshold",
            "Clip", "Swish", "Dropout")

#: Caffe layer type -> its blob counts (types not listed are not checked).
BLOB_COUNTS: dict[str, BlobCounts] = {
    **{name: _ONE_TO_ONE for name in _NEURONS},
    **{name: _ONE_TO_ONE for name in ("BatchNorm", "LRN", "MVN", "Softmax", "InnerProduct", "Flatten", "Reshape",
                                      "ArgMax", "Tile", "Reduction", "Embed")},
    "Convolution": BlobCounts(min_bottoms=1, min_tops=1, equal=True),
    "Deconvolution": BlobCounts(min_bottoms=1, min_tops=1, equal=True),
    "Pooling": BlobCounts(1, 1, 1, 2),  # the second top (MAX only) is the argmax mask
    "Scale": BlobCounts(1, 2, 1, 1),
    "Bias": BlobCounts(1, 2, 1, 1),
    "Eltwise": BlobCounts(min_bottoms=2, min_tops=1, max_tops=1),
    "Concat": BlobCounts(min_bottoms=1, min_tops=1, max_tops=1),
    "Crop": BlobCounts(2, 2, 1, 1),
    "Slice": BlobCounts(1, 1, min_tops=1),
    "Split": BlobCounts(1, 1, min_tops=1),
    "Silence": BlobCounts(min_bottoms=1, max_tops=0),
    "Input": BlobCounts(max_bottoms=0, min_tops=1),
}


def _count_text(low: int | None, high: int | None) -> str:
    if low == high:
        return f"exactly {low}"
    if high is None:
        return f"at least {low}"
    if low is None:
        return f"at most {high}"
    return f"{low} to {high}"


def check_blob_counts(node: Node, *, source: str | None = None) -> None:
    """Raise ShapeError when ``node`` has a bottom or top count its type does not allow."""
    counts = BLOB_COUNTS.get(node.type)
    if counts is None:
        return
    bottoms, tops = len(node.bottoms), len(node.tops)
    max_tops = counts.max_tops
    if node.type == "Pooling" and node.layer.pooling_param.pool != node.layer.pooling_param.MAX:
        max_tops = 1
    for what, have, low, high in (("bottoms", bottoms, counts.min_bottoms, counts.max_bottoms),
                                  ("tops", tops, counts.min_tops, max_tops)):
        if (low is not None and have < low) or (high is not None and have > high):
            noun = what if (high if high is not None else low) != 1 else what[:-1]
            found = f"it has no {what}" if have == 0 else f"it has {have}"
            raise ShapeError(f"{node.type} layer takes {_count_text(low, high)} {noun}; {found}",
                             file=source, layer=node.name)
    if counts.equal and bottoms != tops:
        raise ShapeError(f"{node.type} layer needs one top per bottom, it has {bottoms} bottoms and {tops} tops",
                         file=source, layer=node.name)
