"""Caffemodel weights: V2, V1 and V0 nets; shape or legacy dims; float, double and unpacked data.

Every fixture is written here, with protobuf (caffe_pb2) as the writer and, where it helps, as
the reference decoder the fast wire walker must agree with.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers_files import encode_message, encode_unpacked_floats, encode_varint_field
from helpers_legacy import TINY_V1_TEXT, TINY_V2_TEXT, blob, parse_net

from posebridge.errors import WeightsError
from posebridge.prototxt import caffe_pb2, graph_from_net, match_weights, read_weights
from posebridge.prototxt.weights import parse_weights

RNG = np.random.default_rng(42)
CONV_W = RNG.normal(size=(4, 3, 3, 3)).astype(np.float32)
CONV_B = RNG.normal(size=(4,)).astype(np.float32)
FC_W = RNG.normal(size=(10, 64)).astype(np.float32)  # tiny net: pool1 is 1x4x4x4, so K = 64


def _v1_caffemodel(legacy: bool) -> bytes:
    net = caffe_pb2.NetParameter(name="tiny")
    conv = net.layers.add(name="conv1", type=caffe_pb2.V1LayerParameter.CONVOLUTION)
    fc = net.layers.add(name="fc", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    net.layers.add(name="relu1", type=caffe_pb2.V1LayerParameter.RELU)
    net.layers.add(name="loss", type=caffe_pb2.V1LayerParameter.SOFTMAX_LOSS)  # a training layer
    if legacy:
        conv.blobs.append(blob(CONV_W.ravel().tolist(), legacy_nchw=[4, 3, 3, 3]))
        conv.blobs.append(blob(CONV_B.tolist(), legacy_nchw=[1, 1, 1, 4]))
        fc.blobs.append(blob(FC_W.ravel().tolist(), legacy_nchw=[1, 1, 10, 64]))
    else:
        conv.blobs.append(blob(CONV_W.ravel().tolist(), shape=[4, 3, 3, 3]))
        conv.blobs.append(blob(CONV_B.tolist(), shape=[4]))
        fc.blobs.append(blob(FC_W.ravel().tolist(), shape=[10, 64]))
    return net.SerializeToString()


def _v0_caffemodel() -> bytes:
    net = caffe_pb2.NetParameter(name="tiny")
    conv = net.layers.add().layer
    conv.name, conv.type = "conv1", "conv"
    conv.blobs.append(blob(CONV_W.ravel().tolist(), legacy_nchw=[4, 3, 3, 3]))
    conv.blobs.append(blob(CONV_B.tolist(), legacy_nchw=[1, 1, 1, 4]))
    fc = net.layers.add().layer
    fc.name, fc.type = "fc", "innerproduct"
    fc.blobs.append(blob(FC_W.ravel().tolist(), legacy_nchw=[1, 1, 10, 64]))
    loss = net.layers.add().layer
    loss.name, loss.type = "loss", "softmax_loss"  # a training layer
    return net.SerializeToString()


def _tiny_graph():
    return graph_from_net(parse_net(TINY_V2_TEXT), source="tiny.prototxt")


def _v2_with_blob(blob_bytes: bytes, name: str = "layer") -> bytes:
    """A V2 caffemodel holding one layer with one hand-encoded BlobProto."""
    layer = encode_message(1, name.encode()) + encode_message(2, b"Convolution") + encode_message(7, blob_bytes)
    return encode_message(100, layer)


# ----------------------------------------------------------------------------- formats


@pytest.mark.parametrize("legacy", [True, False], ids=["legacy-dims", "shape"])
def test_v1_caffemodel(tmp_path, legacy: bool) -> None:
    path = tmp_path / "v1.caffemodel"
    path.write_bytes(_v1_caffemodel(legacy))
    weights = read_weights(path)
    assert weights.format == "V1"
    assert weights.net_name == "tiny"
    assert weights.source == str(path)
    assert list(weights.blobs) == ["conv1", "fc", "relu1", "loss"]
    assert weights.layer_types["conv1"] == f"V1:{caffe_pb2.V1LayerParameter.CONVOLUTION}"
    assert weights.blobs["relu1"] == []
    conv_w, conv_b = weights["conv1"]
    assert conv_w.dtype == np.float32 and np.array_equal(conv_w, CONV_W)
    assert conv_b.shape == ((1, 1, 1, 4) if legacy else (4,))
    assert np.array_equal(conv_b.ravel(), CONV_B)
    assert weights["fc"][0].shape == ((1, 1, 10, 64) if legacy else (10, 64))
    assert weights.legacy_shaped["conv1"] == [legacy, legacy]
    assert weights.total_parameters == CONV_W.size + CONV_B.size + FC_W.size


def test_v0_caffemodel() -> None:
    weights = parse_weights(_v0_caffemodel(), source="v0.caffemodel")
    assert weights.format == "V0"
    assert weights.layer_types == {"conv1": "conv", "fc": "innerproduct", "loss": "softmax_loss"}
    assert np.array_equal(weights["conv1"][0], CONV_W)
    assert np.array_equal(weights["conv1"][1].ravel(), CONV_B)
    assert np.array_equal(weights["fc"][0].reshape(10, 64), FC_W)


@pytest.mark.parametrize("data", [_v0_caffemodel(), _v1_caffemodel(True), _v1_caffemodel(False)],
                         ids=["v0", "v1-legacy", "v1-shape"])
def test_legacy_caffemodels_match_the_v2_graph(data: bytes) -> None:
    """Legacy 4-D bias and InnerProduct blobs fit the 1-D and 2-D shapes the layers expect."""
    matched = match_weights(_tiny_graph(), parse_weights(data, source="legacy.caffemodel"))
    assert set(matched.blobs) == {"conv1", "fc"}
    conv_w, conv_b = matched.blobs["conv1"]
    assert conv_b.shape == (4,) and np.array_equal(conv_b, CONV_B)
    assert np.array_equal(conv_w, CONV_W)
    (fc_w,) = matched.blobs["fc"]
    assert fc_w.shape == (10, 64) and np.array_equal(fc_w, FC_W)
    assert matched.ignored == ["loss"]


def test_shape_declared_4d_inner_product_blob_does_not_fit() -> None:
    """Only legacy num/channels/height/width blobs are reshaped, as Caffe's Blob::ShapeEquals."""
    net = caffe_pb2.NetParameter()
    net.layer.add(name="conv1", type="Convolution").blobs.extend(
        [blob(CONV_W.ravel().tolist(), shape=[4, 3, 3, 3]), blob(CONV_B.tolist(), shape=[4])])
    net.layer.add(name="fc", type="InnerProduct").blobs.append(blob(FC_W.ravel().tolist(), shape=[1, 1, 10, 64]))
    with pytest.raises(WeightsError) as info:
        match_weights(_tiny_graph(), parse_weights(net.SerializeToString(), source="m.caffemodel"))
    message = str(info.value)
    assert "m.caffemodel" in message and "layer 'fc'" in message
    assert "[1, 1, 10, 64]" in message and "[10, 64]" in message


def test_v1_prototxt_graph_takes_v1_weights() -> None:
    graph = graph_from_net(parse_net(TINY_V1_TEXT), source="tiny_v1.prototxt")
    matched = match_weights(graph, parse_weights(_v1_caffemodel(True)))
    assert np.array_equal(matched.blobs["fc"][0], FC_W)


# ----------------------------------------------------------------------------- blob encodings


def test_double_data_becomes_float32() -> None:
    values = RNG.normal(size=(2, 3)).astype(np.float64)
    proto = caffe_pb2.BlobProto(double_data=values.ravel().tolist())
    proto.shape.dim.extend([2, 3])
    (array,) = parse_weights(_v2_with_blob(proto.SerializeToString())).blobs["layer"]
    assert array.dtype == np.float32 and array.shape == (2, 3)
    assert np.array_equal(array, values.astype(np.float32))


def test_double_data_with_legacy_dims() -> None:
    proto = caffe_pb2.BlobProto(double_data=[1.0, 2.5, -3.25], num=1, channels=1, height=1, width=3)
    (array,) = parse_weights(_v2_with_blob(proto.SerializeToString())).blobs["layer"]
    assert array.dtype == np.float32 and array.shape == (1, 1, 1, 3)
    assert array.ravel().tolist() == [1.0, 2.5, -3.25]


def test_unpacked_float_data() -> None:
    values = RNG.normal(size=(3, 2)).astype(np.float32)
    shape = encode_message(1, b"".join(bytes([d]) for d in (3, 2)))  # packed dims
    raw = encode_message(7, shape) + encode_unpacked_floats(5, values)
    (array,) = parse_weights(_v2_with_blob(raw)).blobs["layer"]
    assert array.dtype == np.float32 and np.array_equal(array, values)
    # protobuf, as the reference decoder, reads the same bytes the same way
    assert np.array_equal(np.array(caffe_pb2.BlobProto.FromString(raw).data, dtype=np.float32), values.ravel())


def test_unpacked_shape_dims_and_legacy_varints() -> None:
    values = np.arange(6, dtype=np.float32)
    unpacked_dims = encode_message(7, encode_varint_field(1, 2) + encode_varint_field(1, 3))
    packed_data = encode_message(5, values.astype("<f4").tobytes())
    (array,) = parse_weights(_v2_with_blob(unpacked_dims + packed_data)).blobs["layer"]
    assert array.shape == (2, 3) and np.array_equal(array.ravel(), values)

    legacy = b"".join(encode_varint_field(n, d) for n, d in zip((1, 2, 3, 4), (1, 2, 1, 3)))
    (array,) = parse_weights(_v2_with_blob(legacy + packed_data)).blobs["layer"]
    assert array.shape == (1, 2, 1, 3)


def test_blob_without_any_shape_is_one_dimensional() -> None:
    (array,) = parse_weights(_v2_with_blob(caffe_pb2.BlobProto(data=[1, 2, 3]).SerializeToString())).blobs["layer"]
    assert array.shape == (3,) and array.tolist() == [1.0, 2.0, 3.0]


def test_wire_walker_agrees_with_protobuf_on_a_v2_net() -> None:
    net = caffe_pb2.NetParameter(name="ref")
    for i, shape in enumerate([(5, 2, 3, 3), (5,), (7, 11), ()]):
        layer = net.layer.add(name=f"l{i}", type="Convolution")
        layer.convolution_param.num_output = 5  # a non-blob field before the blobs
        for blob_shape in (shape, (2,)):
            values = RNG.normal(size=blob_shape).astype(np.float32)
            # a 0-axis blob (Caffe's shared PReLU slope) is written with no shape at all
            layer.blobs.append(blob(values.ravel().tolist(), shape=list(blob_shape) if blob_shape else None))
    expected = {layer.name: [np.array(b.data, dtype=np.float32).reshape(tuple(b.shape.dim)) for b in layer.blobs]
                for layer in caffe_pb2.NetParameter.FromString(net.SerializeToString()).layer}
    weights = parse_weights(net.SerializeToString())
    assert weights.format == "V2" and list(weights.blobs) == list(expected)
    for name, arrays in expected.items():
        assert [a.shape for a in weights[name]] == [a.shape for a in arrays], name
        assert all(np.array_equal(a, b) for a, b in zip(weights[name], arrays)), name


def test_arrays_are_writable_copies() -> None:
    data = _v1_caffemodel(False)
    array = parse_weights(data)["conv1"][0]
    assert array.flags.writeable and array.flags.c_contiguous
    array[...] = 0
    assert np.array_equal(parse_weights(data)["conv1"][0], CONV_W)
