"""CaffeNet: structure grouping, every blob by name, any batch and size, safetensors round trip."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers_nets import TINY_OPENPOSE, write_net

from posebridge.converter import convert
from posebridge.converter.weights_io import load_safetensors, save_safetensors
from posebridge.errors import UnsupportedLayerError, WeightsError
from posebridge.prototxt import load_graph
from posebridge.prototxt.shapes import pooled_size


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_net(tmp_path_factory.mktemp("tiny"), TINY_OPENPOSE)


def test_parameters_are_named_after_caffe_layers_in_structure_groups(tiny):
    model = convert(*tiny)
    names = set(dict(model.named_parameters()))
    assert "features.conv1.weight" in names
    assert "stage1_L1.s1_L1.weight" in names and "stage1_L2.s1_L2.bias" in names
    assert "stage2_L1.s2_L1b.weight" in names and "stage2_L2.s2_L2a.weight" in names
    assert model.module_path["concat_stage2"] == "stage2.concat_stage2"
    assert model.module_path["net_output"] == "output.net_output"
    assert model.structure.heatmap_channels == 3 and model.structure.paf_channels == 4


def test_weights_equal_the_caffemodel(tiny):
    from posebridge.prototxt import read_weights

    model = convert(*tiny)
    stored = read_weights(tiny[1])
    np.testing.assert_array_equal(model.features.conv1.weight.detach().numpy(), stored["conv1"][0])
    np.testing.assert_array_equal(model.stage2_L2.s2_L2b.bias.detach().numpy(), stored["s2_L2b"][1])


@pytest.mark.parametrize("batch,size", [(1, (16, 16)), (2, (37, 53)), (3, (9, 70))])
def test_runs_at_any_batch_and_size(tiny, batch, size):
    model = convert(*tiny)
    out = model(torch.randn(batch, 3, *size))
    h, w = (pooled_size(size[0], 2, 2, 0), pooled_size(size[1], 2, 2, 0))  # Caffe rounds up
    assert out.shape == (batch, 7, h, w)


def test_run_blobs_gives_every_version_and_forward_agrees(tiny):
    model = convert(*tiny)
    x = torch.randn(2, 3, 21, 30)
    blobs = model.run_blobs(x)
    assert {"conv1", "conv1@relu1", "pool1", "s2_L2a@s2_relu_L2", "net_output"} <= set(blobs)
    assert torch.equal(blobs["conv1@relu1"], torch.relu(blobs["conv1"]))
    assert (blobs["conv1"] < 0).any()  # the conv output before its in-place ReLU is kept
    assert torch.equal(model(x), blobs["net_output"])
    kept = model.run_blobs(x, keep=["pool1"])
    assert set(kept) == {"pool1"} and torch.equal(kept["pool1"], blobs["pool1"])


def test_safetensors_round_trip(tiny, tmp_path):
    model = convert(*tiny)
    path = tmp_path / "tiny.safetensors"
    save_safetensors(model, path)
    assert path.read_bytes()[:8] != b"\x80\x04"  # not a pickle
    loaded = load_safetensors(load_graph(tiny[0]), path)
    x = torch.randn(2, 3, 25, 19)
    assert torch.equal(loaded(x), model(x))


def test_safetensors_of_another_net_is_refused(tiny, tmp_path):
    model = convert(*tiny)
    path = tmp_path / "tiny.safetensors"
    save_safetensors(model, path)
    other = TINY_OPENPOSE.replace("num_output: 6", "num_output: 5")
    (tmp_path / "other.prototxt").write_text(other)
    with pytest.raises(WeightsError, match="shape"):
        load_safetensors(load_graph(tmp_path / "other.prototxt"), path)


def test_unsupported_layer_names_layer_and_type(tmp_path):
    text = TINY_OPENPOSE + 'layer { name: "odd" type: "MysteryOp" bottom: "net_output" top: "odd" }\n'
    (tmp_path / "odd.prototxt").write_text(text)
    graph = load_graph(tmp_path / "odd.prototxt")
    from posebridge.converter.network import CaffeNet
    from posebridge.prototxt.synth import synthesize

    with pytest.raises(UnsupportedLayerError, match=r"layer 'odd'.*MysteryOp.*Convolution"):
        CaffeNet(graph, synthesize(graph))
