"""Small pieces the guarantees rest on: image sizes from headers, Caffe's bottom/top counts."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from posebridge.errors import ShapeError
from posebridge.prototxt import infer_shapes
from posebridge.prototxt.loader import graph_from_bytes
from posebridge.runtime.image_header import image_size

FORMATS = (".png", ".jpg", ".bmp", ".ppm", ".tiff", ".webp", ".ras")


@pytest.mark.parametrize("extension", FORMATS)
@pytest.mark.parametrize("size", [(53, 37), (7, 300)])
def test_header_size_matches_what_opencv_decodes(extension, size):
    image = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    ok, encoded = cv2.imencode(extension, image)
    assert ok
    data = encoded.tobytes()
    decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
    assert image_size(data) == (decoded.shape[1], decoded.shape[0]) == size


@pytest.mark.parametrize("extension", [".pgm", ".pbm", ".png"])
def test_header_size_of_gray_images(extension):
    ok, encoded = cv2.imencode(extension, np.zeros((11, 29), np.uint8))
    assert ok and image_size(encoded.tobytes()) == (29, 11)


def test_jpeg_size_after_a_large_app_segment():
    ok, encoded = cv2.imencode(".jpg", np.zeros((40, 60, 3), np.uint8))
    data = encoded.tobytes()
    app = b"\xff\xe1" + (60000).to_bytes(2, "big") + b"\x00" * 59998  # an EXIF-sized segment
    assert image_size(data[:2] + app + data[2:]) == (60, 40)


@pytest.mark.parametrize("data", [b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM\x00", b"II*\x00\xff\xff\xff\xff",
                                  b"RIFF\x00\x00\x00\x00WEBPVP8X", b"not an image at all", b"P6 12"])
def test_short_or_unknown_headers_give_none(data):
    assert image_size(data) is None


NET = """name: "n"
layer {{ name: "data" type: "Input" top: "data" input_param {{ shape {{ dim: 1 dim: 2 dim: 8 dim: 8 }} }} }}
layer {{ name: "other" type: "Input" top: "other" input_param {{ shape {{ dim: 1 dim: 2 dim: 8 dim: 8 }} }} }}
{layer}
"""


@pytest.mark.parametrize("layer,message", [
    ('layer { name: "x" type: "BatchNorm" bottom: "data" bottom: "other" top: "y" }', "exactly 1 bottom; it has 2"),
    ('layer { name: "x" type: "ReLU" bottom: "data" top: "y" top: "z" }', "exactly 1 top; it has 2"),
    ('layer { name: "x" type: "Eltwise" bottom: "data" top: "y" }', "at least 2 bottoms; it has 1"),
    ('layer { name: "x" type: "Crop" bottom: "data" top: "y" }', "exactly 2 bottoms; it has 1"),
    ('layer { name: "x" type: "Scale" bottom: "data" bottom: "other" bottom: "data" top: "y" }', "1 to 2 bottoms"),
    ('layer { name: "x" type: "Pooling" bottom: "data" top: "y" top: "m" pooling_param { pool: AVE kernel_size: 2 } }',
     "exactly 1 top; it has 2"),
    ('layer { name: "x" type: "Convolution" bottom: "data" bottom: "other" top: "y" '
     'convolution_param { num_output: 2 kernel_size: 1 } }', "one top per bottom"),
])
def test_bottom_and_top_counts_are_caffes(layer, message):
    graph = graph_from_bytes(NET.format(layer=layer).encode(), source="n.prototxt")
    with pytest.raises(ShapeError, match=message) as raised:
        infer_shapes(graph)
    assert "n.prototxt" in str(raised.value) and "layer 'x'" in str(raised.value)


@pytest.mark.parametrize("layer", [
    'layer { name: "x" type: "Pooling" bottom: "data" top: "y" top: "m" pooling_param { pool: MAX kernel_size: 2 } }',
    'layer { name: "x" type: "Scale" bottom: "data" bottom: "other" top: "y" }',
    'layer { name: "x" type: "Convolution" bottom: "data" bottom: "other" top: "y" top: "z" '
    'convolution_param { num_output: 2 kernel_size: 1 } }',
])
def test_counts_caffe_allows_are_accepted(layer):
    infer_shapes(graph_from_bytes(NET.format(layer=layer).encode()))
