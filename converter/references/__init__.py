"""The references a converted net is compared against, layer by layer.

Each reference runs (or reads) the same Caffe net on the same input and returns
:class:`ReferenceOutputs`: the FIRST top of each Caffe layer as that layer wrote it, keyed by
layer name, plus the layers it cannot show and why.

* :mod:`.opencv`: OpenCV dnn's Caffe importer, fusion off, plain CPU backend.
* :mod:`.pycaffe`: real Caffe through ``import caffe``, when it can be imported.
* :mod:`.golden`: a ``.npz`` file of inputs and per-layer outputs written earlier.
"""

from posebridge.converter.references.base import ReferenceOutputs

__all__ = ["ReferenceOutputs"]
