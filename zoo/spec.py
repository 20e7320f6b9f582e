"""What the zoo knows about each net: its shape of architecture and its official weights."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from posebridge.prototxt import caffe_pb2


@dataclass(frozen=True)
class ZooEntry:
    """One built-in net.

    ``heatmaps`` counts the background map (parts + 1); ``pafs`` is 2 x limbs (0 for the
    single-person hand/face nets). ``weights`` is the caffemodel's path inside OpenPose's
    ``models/`` folder and ``weights_md5`` its MD5 (openpose: CMakeLists.txt).
    """

    name: str
    title: str
    family: str
    layout: str
    parts: int
    heatmaps: int
    pafs: int
    paf_stages: int
    heatmap_stages: int
    input_dims: tuple[int, int, int, int]
    weights: str
    weights_md5: str
    official_prototxt: str
    builder: Callable[[ZooEntry], caffe_pb2.NetParameter]

    @property
    def output_channels(self) -> int:
        """Channels of ``net_output``: heatmaps first, then PAFs."""
        return self.heatmaps + self.pafs

    @property
    def weights_file(self) -> str:
        """The caffemodel's file name (e.g. ``pose_iter_440000.caffemodel``)."""
        return self.weights.rsplit("/", 1)[-1]

    @property
    def net_name(self) -> str:
        """The ``name:`` written in the prototxt."""
        return f"OpenPose - {self.title}"
