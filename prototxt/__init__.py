"""Reading Caffe models without Caffe: prototxt and caffemodel into a typed :class:`Graph`.

Entry points: :func:`load_graph` (prototxt or binary net), :func:`read_weights` (caffemodel
blobs as float32 arrays), :func:`match_weights` / :func:`load_weights` (blobs onto a graph),
:func:`infer_shapes` (every blob's shape at any input size).
"""

from posebridge.prototxt.graph import Graph, Node
from posebridge.prototxt.loader import MatchedWeights, graph_from_net, load_graph, load_weights, match_weights
from posebridge.prototxt.shapes import expected_blob_shapes, infer_shapes
from posebridge.prototxt.weights import Weights, read_weights

__all__ = [
    "Graph", "MatchedWeights", "Node", "Weights", "expected_blob_shapes", "graph_from_net", "infer_shapes",
    "load_graph", "load_weights", "match_weights", "read_weights",
]
