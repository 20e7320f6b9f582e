"""Readable, standalone PyTorch source for a converted net, rendered with jinja2.

The converted :class:`CaffeNet` is captured with ``torch.export`` (batch, height and width
dynamic), and its graph of core operators is written out statement by statement, grouped under
a comment naming each Caffe layer. The file defines one ``nn.Module`` with the same state_dict
names as the converted net, so the safetensors file from ``posebridge convert`` loads into it.

No text from the model file reaches the generated source verbatim: identifiers are the
sanitised module names, and layer names in comments and in the name tuples are reduced to a
safe character set first.
"""

from __future__ import annotations

import math
import operator
import os
import re
from pathlib import Path

import jinja2
import torch
from torch.export import Dim, export

from posebridge import __version__
from posebridge.atomic import write_text_atomic
from posebridge.converter.network import CaffeNet
from posebridge.errors import ExportError

_TEMPLATES = Path(__file__).with_name("templates")
_SAFE = re.compile(r"[^0-9A-Za-z_.\-/:]")
MAX_INLINE_CONSTANT = 4096
#: Smallest input side the emitted module is captured for (maps of stride 8 stay wider than 1 pixel).
MIN_SIDE = 16


def safe_text(text: str) -> str:
    """``text`` reduced to letters, digits and ``_ . - / :`` (others become ``?``), at most 120 chars."""
    return _SAFE.sub("?", text)[:120]


def safe_identifier(text: str, index: int) -> str:
    """A Python identifier derived from ``text`` (``input<index>`` if nothing usable remains)."""
    ident = re.sub(r"[^0-9A-Za-z_]", "_", text)
    if not ident or ident[0].isdigit() or ident in ("self", "torch", "nn", "math", "operator"):
        ident = f"input{index}_{ident}" if ident else f"input{index}"
    return ident


class _Wrapper(torch.nn.Module):
    def __init__(self, net: CaffeNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, *inputs: torch.Tensor):
        result = self.net(*inputs)
        return result if isinstance(result, tuple) else (result,)


def _capture(model: CaffeNet, example_size: tuple[int, int]):
    inputs = tuple(torch.randn(2, 3, *example_size) for _ in model.input_names)
    dims = {0: Dim("batch", min=1, max=1024), 2: Dim("height", min=MIN_SIDE, max=16384),
            3: Dim("width", min=MIN_SIDE, max=16384)}
    try:
        with torch.no_grad():
            program = export(_Wrapper(model), inputs, dynamic_shapes={"inputs": tuple(dims for _ in inputs)},
                             strict=False)
    except Exception as error:  # noqa: BLE001 (torch raises many types; report them as one)
        raise ExportError(f"torch.export could not capture the net with dynamic sizes: "
                          f"{type(error).__name__}: {str(error).splitlines()[0][:300]}",
                          file=model.source or None) from None
    return program.module()


def _literal(value, constants: dict[str, str], gm) -> str:
    if isinstance(value, torch.fx.Node):
        return constants.get(f"@{value.name}", value.name)
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_literal(v, constants, gm) for v in value)
        return f"[{inner}]" if isinstance(value, list) else (f"({inner},)" if len(value) == 1 else f"({inner})")
    if isinstance(value, float):
        if math.isinf(value):
            return "math.inf" if value > 0 else "-math.inf"
        if math.isnan(value):
            return "math.nan"
        return repr(value)
    if isinstance(value, (bool, int, type(None))):
        return repr(value)
    if isinstance(value, torch.dtype):
        return str(value)
    if isinstance(value, torch.device):
        return f"torch.device({value.type!r})"
    if isinstance(value, (torch.memory_format, torch.layout)):
        return str(value)
    if isinstance(value, str):
        return repr(safe_text(value))
    raise ExportError(f"cannot write the argument {type(value).__name__} into Python source")


def _callable_name(target) -> str:
    if isinstance(target, torch._ops.OpOverload):  # noqa: SLF001
        namespace, name = target._schema.name.split("::")  # noqa: SLF001
        return f"torch.ops.{namespace}.{name}.{target._overloadname}"  # noqa: SLF001
    module = getattr(target, "__module__", "")
    name = getattr(target, "__name__", "")
    if module in ("_operator", "operator"):
        return f"operator.{name}"
    if module == "math":
        return f"math.{name}"
    if module.startswith("torch") and hasattr(torch, name):
        return f"torch.{name}"
    raise ExportError(f"the captured graph calls {module}.{name}, which the emitter cannot write")


def _layer_of(node: torch.fx.Node, path_to_layer: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    stack = node.meta.get("nn_module_stack") or {}
    for _, (path, _cls) in reversed(list(stack.items())):
        path = re.sub(r"^(L\['self'\]\.|self\.)", "", str(path))
        path = path.removeprefix("net.")
        path = re.sub(r"\[['\"]?([^'\"\]]+)['\"]?\]", r".\1", path).replace("._modules.", ".")
        if path in path_to_layer:
            return path_to_layer[path]
    return None


def emit_python(model: CaffeNet, *, class_name: str = "ConvertedNet",
                example_size: tuple[int, int] = (61, 77)) -> str:
    """Source of a standalone module equivalent to ``model`` (same state_dict names)."""
    gm = _capture(model, example_size)
    state = model.state_dict()
    parameter_names = {name for name, _ in model.named_parameters()}
    path_to_layer = {path: (layer, step.type) for step in model.steps
                     for layer, path in [(step.layer, model.module_path[step.layer])]}
    input_args = [safe_identifier(name, i) for i, name in enumerate(model.input_names)]

    body: list[str] = []
    constants: dict[str, str] = {}
    placeholder_index = 0
    current_layer = None
    for node in gm.graph.nodes:
        if node.op == "placeholder":
            constants[f"@{node.name}"] = input_args[placeholder_index]
            placeholder_index += 1
            continue
        if node.op == "get_attr":
            target = str(node.target).removeprefix("net.")
            if target in state:
                constants[f"@{node.name}"] = f"self.{target}"
            else:
                value = getattr(gm, str(node.target))
                if not isinstance(value, torch.Tensor) or value.numel() > MAX_INLINE_CONSTANT:
                    raise ExportError(f"the captured graph holds a constant '{safe_text(target)}' too large to inline")
                const_name = f"const_{sum(1 for k in constants if not k.startswith('@'))}"
                constants[const_name] = (f"torch.tensor({value.detach().cpu().tolist()!r}, "
                                         f"dtype={value.dtype})")
                constants[f"@{node.name}"] = f"self.{const_name}"
            continue
        if node.op == "call_module":  # torch.export's guard check: not needed in the emitted source
            continue
        if node.op == "output":
            outputs = node.args[0]
            body.append(f"return {_literal(tuple(outputs) if len(outputs) > 1 else outputs[0], constants, gm)}")
            continue
        layer = _layer_of(node, path_to_layer)
        if layer is not None and layer != current_layer:
            body.append(f"# {safe_text(layer[0])} ({safe_text(layer[1])})")
            current_layer = layer
        if node.target is operator.getitem:
            source, index = node.args
            body.append(f"{node.name} = {_literal(source, constants, gm)}[{_literal(index, constants, gm)}]")
            continue
        args = [_literal(a, constants, gm) for a in node.args]
        args += [f"{k}={_literal(v, constants, gm)}" for k, v in node.kwargs.items()]
        body.append(f"{node.name} = {_callable_name(node.target)}({', '.join(args)})")

    template = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_TEMPLATES)), autoescape=False,
                                  keep_trailing_newline=True).get_template("model.py.j2")
    state_rows = [(name, tuple(int(d) for d in tensor.shape), name in parameter_names)
                  for name, tensor in state.items()]
    return template.render(
        class_name=class_name, version=__version__, source_comment=safe_text(str(model.source or "?")),
        layer_count=len(model.steps), parameter_count=sum(p.numel() for p in model.parameters()),
        input_args=", ".join(input_args), input_names=repr(tuple(safe_text(n) for n in model.input_names)),
        output_names=repr(tuple(safe_text(n) for n in model.output_names)), state=state_rows,
        constants=[(k, v) for k, v in constants.items() if not k.startswith("@")], body=body)


def write_python(model: CaffeNet, path: str | os.PathLike, **kwargs) -> None:
    """Emit ``model`` as Python source to ``path`` (atomic; the source is compiled first)."""
    source = emit_python(model, **kwargs)
    try:
        compile(source, os.fspath(path), "exec")
    except SyntaxError as error:
        raise ExportError(f"the emitted source does not compile: {error}", file=os.fspath(path)) from None
    write_text_atomic(path, source)
