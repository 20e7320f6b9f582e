"""The tuned torch runtime: same numbers as the converted net (fp32), bounded error (bf16), safe fallbacks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from helpers_bench import FUSABLE_RELUS, small_net, write_small_net
from posebridge.converter.network import CaffeNet
from posebridge.errors import ParityError, PosebridgeError
from posebridge.prototxt import load_graph
from posebridge.runtime.tuned_torch import (
    ChannelsConcat,
    MaxPool,
    TunedNet,
    fast_max_pool,
    mkldnn_ready,
    self_check,
    tune,
)


def _input(size, seed=1, batch=1):
    rng = np.random.default_rng(seed)
    return torch.from_numpy(rng.uniform(-0.5, 0.5, (batch, 3, *size)).astype(np.float32))


def _relative(ours: torch.Tensor, reference: torch.Tensor) -> float:
    return float((ours.double() - reference.double()).abs().max() / reference.abs().max())


@pytest.fixture(scope="module")
def net(tmp_path_factory):
    torch.set_num_threads(1)
    return small_net(tmp_path_factory.mktemp("small"))


@pytest.mark.parametrize("packed", [True, False])
def test_fp32_equals_the_converted_net_at_odd_sizes_and_batches(net, packed):
    if packed and not mkldnn_ready():
        pytest.skip("PyTorch has no oneDNN here")
    tuned = tune(net, "fp32", packed=packed)
    with torch.inference_mode():
        for size, batch in (((37, 53), 1), ((64, 48), 2), ((37, 53), 1)):  # back to the first size: repacked
            x = _input(size, batch=batch)
            expected, actual = net(x), tuned(x)
            assert actual.shape == expected.shape and actual.dtype == torch.float32
            assert actual.is_contiguous()
            assert _relative(actual, expected) < 1e-5


def test_bf16_stays_within_its_tolerance_and_returns_float32(net):
    tuned = tune(net, "bf16")
    with torch.inference_mode():
        x = _input((40, 56))
        actual, expected = tuned(x), net(x)
    assert actual.dtype == torch.float32
    error = _relative(actual, expected)
    assert 0 < error < 0.05  # bf16 rounds (so not zero), and stays close


def test_only_relus_that_alone_read_a_convolution_are_fused(net):
    tuned = TunedNet(net, "fp32")
    assert tuned.fused_relus == FUSABLE_RELUS
    kinds = [type(layer).__name__ for layer in tuned.layers.values()]
    assert kinds.count("ReLU") == 1  # feat_relu: feat also feeds the Concat directly
    assert kinds.count("ChannelsConcat") == 2 and kinds.count("MaxPool") == 2


POOLS = """
name: "pools"
input: "data"
input_dim: 1
input_dim: 2
input_dim: 16
input_dim: 16
layer { name: "ceil_2_2" type: "Pooling" bottom: "data" top: "a" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ceil_3_2" type: "Pooling" bottom: "data" top: "b" pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "floor_3_1" type: "Pooling" bottom: "data" top: "c" pooling_param { pool: MAX kernel_size: 3 stride: 1 round_mode: FLOOR } }
layer { name: "padded" type: "Pooling" bottom: "data" top: "d" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 } }
layer { name: "gapped" type: "Pooling" bottom: "data" top: "e" pooling_param { pool: MAX kernel_size: 2 stride: 3 } }
layer { name: "average" type: "Pooling" bottom: "data" top: "f" pooling_param { pool: AVE kernel_size: 2 stride: 2 } }
"""


def test_fast_max_pool_matches_caffe_pooling_where_it_applies(tmp_path):
    prototxt = tmp_path / "pools.prototxt"
    prototxt.write_text(POOLS, encoding="utf-8")
    model = CaffeNet(load_graph(prototxt))
    modules = {step.layer: model._module(step) for step in model.steps if step.type == "Pooling"}
    replaced = {name: fast_max_pool(module) for name, module in modules.items()}
    assert all(isinstance(replaced[name], MaxPool) for name in ("ceil_2_2", "ceil_3_2", "floor_3_1"))
    assert replaced["padded"] is None and replaced["gapped"] is None and replaced["average"] is None
    for size in ((15, 17), (16, 16), (9, 22)):
        x = torch.randn(2, 2, *size).contiguous(memory_format=torch.channels_last)
        for name, fast in replaced.items():
            if fast is not None:
                torch.testing.assert_close(fast(x), modules[name](x), rtol=0, atol=0)


def test_channels_concat_equals_torch_cat_and_stays_channels_last():
    parts = [torch.randn(2, c, 5, 7).contiguous(memory_format=torch.channels_last) for c in (3, 4, 5)]
    joined = ChannelsConcat()(*parts)
    torch.testing.assert_close(joined, torch.cat(parts, dim=1), rtol=0, atol=0)
    assert joined.is_contiguous(memory_format=torch.channels_last)
    assert ChannelsConcat()(parts[0]) is parts[0]


def test_self_check_catches_a_wrong_layer(net):
    tuned = TunedNet(net, "fp32")
    self_check(net, tuned)
    first_conv = next(layer for layer in tuned.layers.values() if getattr(layer, "bias", None) is not None)
    first_conv.bias = first_conv.bias + 1.0  # a new tensor: the tuned net shares the original's otherwise
    with pytest.raises(ParityError, match="relative error"):
        self_check(net, tuned)


TWO_INPUTS = """
name: "two"
input: "a"
input_dim: 1
input_dim: 2
input_dim: 4
input_dim: 4
input: "b"
input_dim: 1
input_dim: 2
input_dim: 4
input_dim: 4
layer { name: "join" type: "Concat" bottom: "a" bottom: "b" top: "join" }
"""


def test_unknown_precision_and_multi_input_nets_are_refused(net, tmp_path):
    with pytest.raises(PosebridgeError, match="precision"):
        TunedNet(net, "fp8")
    prototxt = tmp_path / "two.prototxt"
    prototxt.write_text(TWO_INPUTS, encoding="utf-8")
    with pytest.raises(PosebridgeError, match="one input"):
        TunedNet(CaffeNet(load_graph(prototxt)), "fp32")


def test_backends_default_to_the_tuned_net_and_refuse_impossible_precisions(tmp_path):
    from posebridge.converter.model_family import ModelFamily
    from posebridge.runtime.backends import TorchBackend, open_backend

    prototxt, caffemodel = write_small_net(tmp_path)
    backend = open_backend(caffemodel, prototxt=prototxt)
    assert backend.name == "torch" and backend.precision == "fp32"
    assert isinstance(backend._runner, TunedNet)
    batch = _input((24, 40)).numpy()
    untuned = TorchBackend(backend.model, backend.family, tuned=False)
    np.testing.assert_allclose(backend.infer(batch), untuned.infer(batch), rtol=0,
                               atol=1e-5 * np.abs(untuned.infer(batch)).max())
    bf16 = open_backend(caffemodel, prototxt=prototxt, precision="bf16")
    assert bf16._runner.precision == "bf16"
    with pytest.raises(PosebridgeError, match="precision int8 runs on the torch or onnxruntime backend"):
        open_backend(caffemodel, prototxt=prototxt, backend="opencv", precision="int8")
    with pytest.raises(PosebridgeError, match="precision bf16 runs on the torch backend"):
        open_backend(caffemodel, prototxt=prototxt, backend="onnxruntime", precision="bf16")
    with pytest.raises(PosebridgeError, match="unknown precision"):
        open_backend(caffemodel, prototxt=prototxt, precision="fp8")
    with pytest.raises(PosebridgeError, match="torch backend runs fp32, bf16 or int8"):
        TorchBackend(backend.model, ModelFamily("x", "test", None, None, 0, None, None), precision="fp16")


@pytest.mark.parametrize("name", ["coco", "body_25", "mpi", "hand", "face"])
def test_official_architectures_keep_parity_when_tuned(name):
    from posebridge import zoo
    from posebridge.prototxt.synth import synthesize

    graph = zoo.graph(f"zoo:{name}")
    net = CaffeNet(graph, synthesize(graph, seed=3, init="he"))
    tuned = tune(net, "fp32")
    assert tuned.winograd_convs > 0  # the 3x3 convolutions with enough channels
    with torch.inference_mode():
        x = _input((72, 104), batch=2)
        assert _relative(tuned(x), net(x)) < 1e-5
