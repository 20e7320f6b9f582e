"""Which float32 engine runs a converted net by default: the tuned torch module or ncnn.

Both compute the Caffe net within float32 rounding (Winograd convolutions: relative error
about 1e-5). Where posebridge's native Winograd kernel runs (:mod:`posebridge.runtime.native_winograd`:
AVX-512 and a C compiler), the tuned torch module, which calls it for 3x3 convolutions, is the
fastest engine for every net measured. Medians on this project's bench machine (2 cores,
1x3x368x656, synthetic weights, one run each, engines interleaved):

==========  =============  ==========  ==========================  ============
net         torch+native   ncnn        torch, PyTorch Winograd     OpenCV dnn
==========  =============  ==========  ==========================  ============
BODY_25     452            613         836                         884
COCO        1709           2106        2131                        4230
==========  =============  ==========  ==========================  ============

Without the native kernel, ncnn's Winograd kernels win on nets made of 3x3 convolutions and
oneDNN's direct convolutions (torch) on nets with large kernels. Measured then, with the share
of multiply-adds in 3x3 stride-1 convolutions (368x368 for hand and face):

==============  =======  ============  ============
net             share    ncnn (ms)     torch (ms)
==============  =======  ============  ============
BODY_25         0.973    581           1006
COCO            0.314    2029          1858
MPI             0.318    1927          1804
MPI 4 stages    0.437    1328          1269
hand            0.571    699           682
face            0.553    730           694
==============  =======  ============  ============

For ``--precision int8`` the same share decides between the tuned net on the native int8
kernels (F(2x2, 3x3) Winograd and 1x1, :mod:`posebridge.runtime.native_winograd`) and
onnxruntime's calibrated int8 model: see :data:`NATIVE_INT8_MIN_SHARE`.

So the fp32 default is torch when the native kernel is available; otherwise ncnn when at least
:data:`NCNN_MIN_SHARE` of the multiply-adds are in 3x3 stride-1 convolutions and the ``ncnn``
package imports, and torch otherwise, also when a layer has no ncnn writer
(:mod:`posebridge.converter.ncnn_export`).
"""

from __future__ import annotations

import importlib.util

from posebridge.prototxt.graph import Graph

NCNN_MIN_SHARE = 0.9
#: Input (height, width) at which the shares are counted (ratios barely depend on it).
SHARE_SIZE = (96, 96)


def winograd_share(graph: Graph, size: tuple[int, int] = SHARE_SIZE) -> float:
    """The fraction of the net's convolution multiply-adds that are in 3x3 stride-1, group-1 convolutions.

    Counted from the prototxt alone (shape inference at ``size``, batch 1, and
    :func:`posebridge.prototxt.analysis.layer_macs`), so the choice needs no weights; 0.0 for a
    net without convolutions.
    """
    from posebridge.prototxt.analysis import layer_macs
    from posebridge.prototxt.shapes import conv_geometry, infer_shapes

    shapes = infer_shapes(graph, graph.input_shapes(size, batch=1))
    counts = {"3x3": 0, "other": 0}
    for node in graph.nodes:
        if node.type != "Convolution":
            continue
        macs = layer_macs(node, [shapes.get(b) for b in node.bottoms], [shapes.get(t) for t in node.tops]) or 0
        geometry = conv_geometry(node)
        plain = (geometry["kernel"] == (3, 3) and geometry["stride"] == (1, 1)
                 and max(node.layer.convolution_param.group, 1) == 1)
        counts["3x3" if plain else "other"] += macs
    total = counts["3x3"] + counts["other"]
    return counts["3x3"] / total if total else 0.0


def ncnn_available() -> bool:
    """Whether the ``ncnn`` package can be imported."""
    return importlib.util.find_spec("ncnn") is not None


def native_available() -> bool:
    """Whether posebridge's native Winograd kernel runs here (built on first call)."""
    from posebridge.runtime import native_winograd

    return native_winograd.available()


#: int8 runs on the native int8 kernels when at least this share of the multiply-adds is in 3x3
#: stride-1 convolutions. Measured at 368x656 (bench, one run): BODY_25 (0.973) 303 ms there
#: against onnxruntime's int8 484 ms; COCO (0.314) 1,599 ms against 623 ms, as its 7x7
#: convolutions stay in float32 on torch.
NATIVE_INT8_MIN_SHARE = 0.9


def native_int8_available() -> bool:
    """Whether posebridge's native int8 Winograd kernel runs here (built on first call)."""
    from posebridge.runtime import native_winograd

    return native_winograd.available("wino23_int8")


def default_int8_backend(graph: Graph) -> str:
    """"torch" (the tuned net on the native int8 Winograd kernel) or "onnxruntime" (a calibrated
    int8 model): the faster int8 engine for the net ``graph`` describes, by the share rule above."""
    if len(graph.inputs) != 1 or not native_int8_available():
        return "onnxruntime"
    return "torch" if winograd_share(graph) >= NATIVE_INT8_MIN_SHARE else "onnxruntime"


def default_fp32_backend(graph: Graph) -> str:
    """"ncnn" or "torch": the faster float32 engine for the net ``graph`` describes, by the rule
    above (the caller falls back to torch when a layer turns out to have no ncnn writer)."""
    if len(graph.inputs) != 1 or native_available() or not ncnn_available():
        return "torch"
    return "ncnn" if winograd_share(graph) >= NCNN_MIN_SHARE else "torch"
