"""A Caffe graph as a PyTorch module: one submodule per layer, run in topological order.

Parameters are named after the Caffe layers, grouped as the network's structure shows them:
for OpenPose nets ``features.conv1_1.weight``, ``stage2_L1.Mconv1_stage2_L1.weight``, ...
(found from the graph by :mod:`posebridge.prototxt.structure`); for other nets
``layers.<name>.weight``. Nothing depends on the input size: the module runs at any batch and
spatial size.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from posebridge.converter.registry import LayerSpec, convert_layer
from posebridge.prototxt.graph import Graph, Shape
from posebridge.prototxt.loader import MatchedWeights, shapes_for_weights
from posebridge.prototxt.structure import OpenPoseStructure, detect_structure

GENERIC_GROUP = "layers"


def module_key(layer_name: str, taken: set[str]) -> str:
    """A valid, unique nn.Module attribute name for a Caffe layer name."""
    key = re.sub(r"[^0-9A-Za-z_]", "_", layer_name) or "layer"
    if key[0].isdigit():
        key = f"_{key}"
    base, n = key, 1
    while key in taken:
        n += 1
        key = f"{base}_{n}"
    taken.add(key)
    return key


@dataclass(frozen=True)
class Step:
    """One layer of the forward plan: where its module lives and which blobs it reads/writes."""

    layer: str
    type: str
    group: str
    key: str
    bottoms: tuple[str, ...]
    tops: tuple[str, ...]


class CaffeNet(nn.Module):
    """A converted Caffe net.

    ``forward(*inputs)`` takes one tensor per graph input (in ``input_names`` order) and returns
    the net's output blob (or a tuple of them, in ``output_names`` order).
    ``run_blobs(...)`` returns every intermediate blob by its version name, for parity.
    """

    def __init__(self, graph: Graph, weights: MatchedWeights | Mapping[str, Sequence[np.ndarray]] | None = None,
                 *, input_shapes: Mapping[str, Shape] | None = None) -> None:
        super().__init__()
        blobs = weights.blobs if isinstance(weights, MatchedWeights) else (weights or {})
        shapes, _ = shapes_for_weights(graph, dict(input_shapes) if input_shapes else None)
        self.structure: OpenPoseStructure | None = detect_structure(graph)
        groups = self.structure.groups() if self.structure else {}
        self.graph_name = graph.name
        self.source = graph.source
        self.input_names: tuple[str, ...] = tuple(graph.inputs)
        self.output_names: tuple[str, ...] = tuple(graph.caffe_blob[o] for o in graph.outputs)
        self.output_versions: tuple[str, ...] = tuple(graph.outputs)
        self.caffe_blob = dict(graph.caffe_blob)
        self.steps: list[Step] = []
        self.module_path: dict[str, str] = {}
        taken: dict[str, set[str]] = {}
        for node in graph.nodes:
            group = groups.get(node.name, GENERIC_GROUP)
            if not hasattr(self, group) or not isinstance(getattr(self, group), nn.ModuleDict):
                self.add_module(group, nn.ModuleDict())
                taken[group] = set()
            key = module_key(node.name, taken[group])
            spec = LayerSpec(
                name=node.name, type=node.type, layer=node.layer,
                blobs=[np.asarray(b, dtype=np.float32) for b in blobs.get(node.name, ())],
                input_shapes=[shapes.get(b) or () for b in node.bottoms], source=graph.source)
            getattr(self, group)[key] = convert_layer(spec)
            self.module_path[node.name] = f"{group}.{key}"
            self.steps.append(Step(node.name, node.type, group, key, node.bottoms, node.tops))
        self.eval()

    def _module(self, step: Step) -> nn.Module:
        return getattr(self, step.group)[step.key]

    def _bind_inputs(self, inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if isinstance(inputs, Mapping):
            missing = [n for n in self.input_names if n not in inputs]
            if missing:
                raise TypeError(f"missing inputs {missing}; the net's inputs are {list(self.input_names)}")
            return {n: inputs[n] for n in self.input_names}
        if len(inputs) != len(self.input_names):
            raise TypeError(f"expected {len(self.input_names)} input tensors ({list(self.input_names)}), "
                            f"got {len(inputs)}")
        return dict(zip(self.input_names, inputs))

    def run_blobs(self, inputs: Sequence[torch.Tensor] | Mapping[str, torch.Tensor] | torch.Tensor,
                  *, keep: Iterable[str] | None = None) -> dict[str, torch.Tensor]:
        """Run the net; return every blob version (or only those in ``keep``) by version name."""
        if isinstance(inputs, torch.Tensor):
            inputs = (inputs,)
        given = self._bind_inputs(inputs)
        wanted = None if keep is None else set(keep)
        values: dict[str, torch.Tensor] = {}
        remaining = self._last_use()
        for index, step in enumerate(self.steps):
            if step.type == "Input":
                result = tuple(given[self.caffe_blob[t]] for t in step.tops)
            else:
                result = self._module(step)(*(values[b] for b in step.bottoms))
                if not isinstance(result, tuple):
                    result = (result,)
            for top, tensor in zip(step.tops, result):
                values[top] = tensor
            if wanted is not None:  # free blobs nobody needs any more
                for blob in remaining.get(index, ()):
                    if blob not in wanted:
                        values.pop(blob, None)
        return values if wanted is None else {k: v for k, v in values.items() if k in wanted}

    def _last_use(self) -> dict[int, list[str]]:
        last: dict[str, int] = {}
        for index, step in enumerate(self.steps):
            for blob in (*step.bottoms, *step.tops):
                last[blob] = index
        for blob in self.output_versions:
            last[blob] = len(self.steps)
        by_step: dict[int, list[str]] = {}
        for blob, index in last.items():
            by_step.setdefault(index, []).append(blob)
        return by_step

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        values = self.run_blobs(inputs, keep=self.output_versions)
        outputs = tuple(values[v] for v in self.output_versions)
        return outputs[0] if len(outputs) == 1 else outputs


def input_channels(net: CaffeNet) -> int:
    """Channels the net's first convolution reads (its image channels); 3 for a net without one."""
    for step in net.steps:
        if step.type != "Input":
            module = net._module(step)
            if isinstance(module, nn.Conv2d):
                return int(module.in_channels)
    return 3
