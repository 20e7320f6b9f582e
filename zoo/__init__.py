"""Built-in OpenPose architectures, written from the published designs (no copied prototxt).

``names()`` lists them (coco, mpi, mpi_4_stages, body_25, hand, face); ``build(name)`` gives a
Caffe NetParameter whose layer names, types, parameters and blobs equal OpenPose's released
prototxt, so the official caffemodels load onto it; ``prototxt_text(name)`` prints it;
``resolve("zoo:NAME")`` writes it to a cache file and returns the path, so any tool that
takes a prototxt path accepts ``zoo:NAME``.
"""

from posebridge.zoo.registry import (
    ENTRIES,
    ZOO_PREFIX,
    UnknownZooNetError,
    build,
    describe,
    entry,
    names,
    prototxt_text,
)
from posebridge.zoo.resolve import cache_dir, export, graph, is_zoo_ref, resolve
from posebridge.zoo.spec import ZooEntry

__all__ = [
    "ENTRIES", "ZOO_PREFIX", "UnknownZooNetError", "ZooEntry", "build", "cache_dir", "describe", "entry",
    "export", "graph", "is_zoo_ref", "names", "prototxt_text", "resolve",
]
