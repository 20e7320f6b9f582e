"""``posebridge demo``: every stage of posebridge on the built-in COCO net with synthetic weights.

Steps: write the architecture (``zoo:coco``) and a synthetic caffemodel, convert to PyTorch and
safetensors, check every layer against OpenCV dnn, export ONNX and check it with onnxruntime,
run OpenPose inference through the ONNX file on a sample photo (OpenPose JSON and a rendered
image), and write the architecture report. The synthetic weights make the keypoints
meaningless: the demo shows the chain works, not a trained model.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path


from posebridge import zoo
from posebridge.atomic import write_text_atomic
from posebridge.converter.api import convert
from posebridge.converter.onnx_export import export_onnx
from posebridge.converter.parity import compare
from posebridge.converter.weights_io import save_safetensors
from posebridge.errors import PosebridgeError
from posebridge.prototxt.analysis import analyze
from posebridge.prototxt.loader import load_graph, load_weights
from posebridge.prototxt.synth import synthesize, write_caffemodel
from posebridge.runtime.backends import open_backend
from posebridge.runtime.media import read_image
from posebridge.runtime.openpose_json import write_openpose_json
from posebridge.runtime.pipeline import PoseEstimator
from posebridge.runtime.render import render_pose, rendered_file_name, save_image
from posebridge.tools.report.render import render_report

SAMPLE_IMAGE = Path(__file__).resolve().parent.parent / "runtime" / "data" / "astronaut.jpg"
NET = "coco"
#: Reduced sizes so the demo takes about a minute on 2 CPU cores.
PARITY_SIZE = (96, 128)
ONNX_CHECK_SIZES = ((64, 80), (57, 91))
NET_RESOLUTION = "-1x176"
REPORT_SIZE = (368, 368)
QUICK_SIZE = (57, 75)


@dataclass
class DemoResult:
    """Where each output went and what each step measured."""

    out: Path
    files: dict[str, Path] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    parity_ok: bool = False
    people: int = 0


def run_demo(out: str | Path, *, image: str | Path | None = None, seed: int = 0, quick: bool = False,
             log: Callable[[str], None] = print) -> DemoResult:
    """Run every stage, writing into ``out``; returns the files written and the figures.

    ``quick`` checks parity and the ONNX export at one small size only (for the test suite).
    """
    parity_size = QUICK_SIZE if quick else PARITY_SIZE
    onnx_sizes = (QUICK_SIZE,) if quick else ONNX_CHECK_SIZES
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    result = DemoResult(out=out)

    def step(name: str, action: Callable[[], str]) -> None:
        started = time.perf_counter()
        message = action()
        result.seconds[name] = time.perf_counter() - started
        line = f"[{name}] {message} ({result.seconds[name]:.1f} s)"
        result.lines.append(line)
        log(line)

    prototxt = out / "pose_deploy_linevec.prototxt"
    caffemodel = out / "coco_synthetic.caffemodel"

    def synth() -> str:
        zoo.export(NET, prototxt)
        graph = load_graph(prototxt)
        blobs = synthesize(graph, seed=seed, init="he")
        write_caffemodel(caffemodel, graph, blobs)
        result.files.update(prototxt=prototxt, caffemodel=caffemodel)
        count = sum(a.size for arrays in blobs.values() for a in arrays)
        return f"zoo:{NET} written to {prototxt.name}; synthetic weights ({count / 1e6:.1f} M parameters) to {caffemodel.name}"

    model_holder = {}

    def to_torch() -> str:
        graph = load_graph(prototxt)
        model = convert(graph, load_weights(graph, caffemodel))
        model_holder["model"] = model
        path = out / "coco.safetensors"
        save_safetensors(model, path, metadata={"prototxt": prototxt.name})
        result.files["safetensors"] = path
        stages = len(model.structure.stages) if model.structure else 0
        return f"PyTorch module of {len(model.steps)} layers (features F, {stages} stages of L1/L2 branches); weights to {path.name}"

    def parity() -> str:
        report = compare(prototxt, caffemodel, reference="opencv", input_sizes=[parity_size])
        result.parity_ok = report.ok
        path = out / "parity.json"
        write_text_atomic(path, report.to_json())
        result.files["parity"] = path
        worst = max((r.max_rel for r in report.compared if r.max_rel is not None), default=0.0)
        verdict = "every layer within" if report.ok else f"first failure at {report.first_failure.layer}, tolerance"
        return (f"{len(report.compared)} layers compared with OpenCV dnn at 1x3x{parity_size[0]}x{parity_size[1]}: "
                f"{verdict} {report.tolerance:g} (largest relative error {worst:.1e})")

    def onnx_step() -> str:
        path = out / "coco.onnx"
        report = export_onnx(model_holder["model"], path, sizes=onnx_sizes, prototxt=prototxt,
                             caffemodel=caffemodel)
        result.files["onnx"] = path
        return (f"{path.name}: family {report.family.name}, onnxruntime vs PyTorch max relative error "
                f"{report.max_relative_error:.1e}")

    def inference() -> str:
        picture = Path(image) if image is not None else SAMPLE_IMAGE
        frame = read_image(picture)
        estimator = PoseEstimator(open_backend(out / "coco.onnx"), net_resolution=NET_RESOLUTION)
        pose = estimator(frame, picture.stem)
        result.people = len(pose.people)
        result.files["json"] = write_openpose_json(out, picture.stem, pose.people)
        rendered = out / rendered_file_name(picture.stem, "png")
        save_image(rendered, render_pose(frame, pose.people, estimator.skeleton))
        result.files["rendered"] = rendered
        return (f"{picture.name} ({frame.shape[1]}x{frame.shape[0]}) through onnxruntime at {NET_RESOLUTION}: "
                f"{len(pose.people)} people (synthetic weights: meaningless) -> {result.files['json'].name}, "
                f"{rendered.name}")

    def report() -> str:
        graph = load_graph(prototxt)
        analysis = analyze(graph, input_size=REPORT_SIZE, weights=load_weights(graph, caffemodel))
        path = out / "coco_report.html"
        write_text_atomic(path, render_report(analysis, "html"))
        result.files["report"] = path
        totals = analysis.totals
        return f"{path.name}: {totals.layers} layers, {totals.params / 1e6:.1f} M parameters, {totals.macs / 1e9:.0f} G MACs at 368x368"

    for name, action in (("synth", synth), ("convert", to_torch), ("parity", parity), ("onnx", onnx_step),
                         ("run", inference), ("report", report)):
        step(name, action)
    if not result.parity_ok:
        raise PosebridgeError("parity against OpenCV dnn failed: see " + str(result.files["parity"]))
    return result


def closing_text(result: DemoResult) -> str:
    """The summary printed at the end: outputs, the synthetic-weights warning, next commands."""
    width = max(len(k) for k in result.files)
    lines = ["", f"posebridge demo: every stage ran in {sum(result.seconds.values()):.0f} s. Outputs in {result.out}:"]
    lines += [f"  {key.ljust(width)}  {path}" for key, path in result.files.items()]
    lines += [
        "",
        "The weights are SYNTHETIC (random, seeded): the keypoints are meaningless until you convert",
        "the official weights. With OpenPose's files (models/getModels.sh in the OpenPose repository",
        "downloads pose/coco/pose_iter_440000.caffemodel):",
        "  posebridge verify pose_iter_440000.caffemodel",
        "  posebridge convert zoo:coco pose_iter_440000.caffemodel -o coco.safetensors --onnx coco.onnx",
        "  posebridge parity zoo:coco pose_iter_440000.caffemodel --input-size 368x368",
        "  posebridge run coco.onnx photo.jpg --write-json out/ --write-images out/",
    ]
    return "\n".join(lines)
