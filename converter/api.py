"""The converter's public entry point: Caffe files in, a ready PyTorch module out."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from posebridge.converter.network import CaffeNet
from posebridge.prototxt.graph import Graph, Shape
from posebridge.prototxt.loader import MatchedWeights, load_graph, load_weights


def convert(prototxt: str | os.PathLike | Graph, caffemodel: str | os.PathLike | MatchedWeights | None = None,
            *, input_shapes: Mapping[str, Shape] | None = None, phase: str = "TEST",
            stages: Sequence[str] = ()) -> CaffeNet:
    """Convert a Caffe net (prototxt path or Graph) and its weights to a :class:`CaffeNet`.

    ``caffemodel`` is a path, already matched weights, or None (only for nets without learnable
    layers). The module is in eval mode.
    """
    graph = prototxt if isinstance(prototxt, Graph) else load_graph(prototxt, phase=phase, stages=stages)
    if caffemodel is None or isinstance(caffemodel, MatchedWeights):
        weights = caffemodel
    else:
        weights = load_weights(graph, caffemodel)
    return CaffeNet(graph, weights, input_shapes=input_shapes)
