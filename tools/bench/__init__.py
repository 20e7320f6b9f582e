"""``posebridge bench``: the whole toolkit measured against its peers, in one run.

:func:`run_bench` measures, for each net (zoo architectures with synthetic weights of the real
size): loading (caffemodel read, files -> ready net), the network forward of every backend at
several input sizes (:mod:`.forward`), what reduced precision does to the maps and keypoints
(:mod:`.accuracy`), post-processing on ground-truth scenes (:mod:`.postprocess`), and end to
end throughput on a folder of images and on a video (:mod:`.end_to_end`). It returns one
dictionary (written as ``bench.json``), from which :mod:`.report` renders Markdown tables and
:mod:`.plot` a PNG of forward time against input size. Timings are figures, never assertions.
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from posebridge.tools.bench.machine import machine_info, usable_cores
from posebridge.tools.bench.timing import load_average

SCHEMA = 1
JSON_NAME, MARKDOWN_NAME, PLOT_NAME = "bench.json", "bench.md", "forward.png"
SECTIONS = ("loading", "forward", "accuracy", "postprocess", "end_to_end")


@dataclass(frozen=True)
class BenchConfig:
    """What one benchmark run measures (sizes are (height, width) of the net input, batch 1)."""

    nets: tuple[str, ...] = ("coco", "body_25")
    sizes: tuple[tuple[int, int], ...] = ((184, 328), (276, 492), (368, 656))
    backends: tuple[str, ...] = ("opencv", "torch-eager", "onnxruntime", "torch-direct", "torch", "ncnn",
                                 "torch-bf16", "torch-int8", "onnxruntime-int8")
    warmup: int = 1
    repeats: int = 5
    threads: int = 0  # 0: every usable CPU
    sections: tuple[str, ...] = SECTIONS
    loading_net: str = "coco"
    loading_runs: int = 3
    post_people: tuple[int, ...] = (1, 5, 20)
    post_size: tuple[int, int] = (368, 656)
    post_repeats: int = 20
    accuracy_photos: int = 3
    accuracy_photo_size: tuple[int, int] | None = None  # (w, h) to resize the photos to
    accuracy_resolution: str = "-1x368"
    e2e_backends: tuple[str, ...] = ("opencv", "onnxruntime", "torch", "ncnn", "torch-bf16", "torch-int8",
                                     "onnxruntime-int8")
    e2e_images: int = 4
    e2e_video_frames: int = 8
    e2e_frame_size: tuple[int, int] = (656, 368)  # (w, h)
    e2e_resolution: str = "-1x368"
    e2e_video_batch: int = 4
    quick: bool = False

    def resolved_threads(self) -> int:
        return self.threads or usable_cores()


FULL = BenchConfig()
QUICK = BenchConfig(sizes=((96, 168), (184, 328)), repeats=2, loading_runs=1, post_repeats=5, accuracy_photos=1,
                    accuracy_photo_size=(328, 184), accuracy_resolution="-1x176", e2e_images=3, e2e_video_frames=4,
                    e2e_frame_size=(328, 184), e2e_resolution="-1x176", e2e_video_batch=2, quick=True)

Logger = Callable[[str], None]


#: The runtime skeleton each zoo body net outputs.
NET_SKELETONS = {"coco": "COCO", "body_25": "BODY_25", "mpi": "MPI", "mpi_4_stages": "MPI"}


def _skeleton_of(net: str) -> str:
    """The runtime skeleton a zoo body net outputs."""
    return NET_SKELETONS.get(net, net.upper())


def run_bench(config: BenchConfig = FULL, *, work: str | Path | None = None, command: str = "posebridge bench",
              log: Logger = lambda line: None) -> dict:
    """Measure everything in ``config``; the result dictionary (see the module docstring).

    ``work``: a folder to keep (and reuse) the synthetic caffemodels, ONNX exports and media in;
    default a temporary folder.
    """
    from posebridge.tools.bench import forward, media, models, postprocess
    from posebridge.tools.bench.report import targets

    started = time.perf_counter()
    config, skipped = forward.without_unavailable(config, log)
    threads = config.resolved_threads()
    forward.set_threads(threads)
    results: dict = {"schema": SCHEMA, "command": command, "quick": config.quick,
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "config": _config_dict(config, threads),
                     "machine": machine_info(), "load_average": {"start": load_average()},
                     "loading": None, "forward": [], "setup": {}, "accuracy": {"photos": [], "scenes": []},
                     "postprocess": [], "end_to_end": [], "skipped_backends": skipped}
    with tempfile.TemporaryDirectory(prefix="posebridge-bench-") as scratch:
        folder = models.work_folder(work, scratch)
        log(f"work folder: {folder}")
        media_folder = folder / f"media-{config.e2e_frame_size[0]}x{config.e2e_frame_size[1]}"
        if "end_to_end" in config.sections:
            images = media_folder / "images"
            if not images.is_dir() or len(list(images.iterdir())) != config.e2e_images:
                media.write_image_folder(images, config.e2e_images, config.e2e_frame_size)
            video = media.write_video(media_folder / f"video{config.e2e_video_frames}", config.e2e_video_frames,
                                      config.e2e_frame_size)
        for net in config.nets:
            _bench_net(net, config, folder, results, log, threads,
                       (media_folder / "images", video) if "end_to_end" in config.sections else None)
        if "postprocess" in config.sections:
            log("post-processing")
            results["postprocess"] = postprocess.bench_postprocess(
                [_skeleton_of(net) for net in config.nets], config.post_people, config.post_size,
                config.post_repeats, log)
    results["load_average"]["end"] = load_average()
    results["seconds"] = time.perf_counter() - started
    results["targets"] = targets(results)
    return results


def _bench_net(net: str, config: BenchConfig, folder: Path, results: dict, log: Logger, threads: int,
               e2e_media: tuple[Path, Path] | None) -> None:
    from posebridge.converter.api import convert
    from posebridge.prototxt import load_graph
    from posebridge.runtime.default_engine import default_fp32_backend
    from posebridge.tools.bench import accuracy, end_to_end, forward, loading, models

    log(f"{net}: preparing files")
    files = models.prepare_caffe(net, folder)
    model = convert(files.prototxt, files.caffemodel)
    needs_onnx = any(b.startswith("onnxruntime") for b in (*config.backends, *config.e2e_backends))
    if needs_onnx or ("loading" in config.sections and net == config.loading_net):
        models.prepare_onnx(files, folder, model, quick=config.quick)
    if "loading" in config.sections and net == config.loading_net:
        log(f"{net}: loading")
        results["loading"] = loading.bench_loading(files, config.loading_runs, log)
    wanted = list(dict.fromkeys([*config.backends, *(config.e2e_backends if "end_to_end" in config.sections else ())]))
    default = default_fp32_backend(load_graph(files.prototxt))  # its runtime name is also its bench name
    results.setdefault("defaults", {})[net] = default
    log(f"{net}: default fp32 engine {default}")
    backends, setup = forward.build_backends(files, wanted, threads, model)
    results["setup"][net] = {"files_s": files.setup_s, "backends_s": setup, "int8_export_error": files.int8_error}
    outputs = {}
    if "forward" in config.sections:
        log(f"{net}: forward")
        timed = {name: backends[name] for name in config.backends}
        rows, outputs = forward.bench_forward(timed, config.sizes, warmup=config.warmup, repeats=config.repeats,
                                              default=default, log=log)
        results["forward"].extend({"net": net, **row} for row in rows)
    if "accuracy" in config.sections:
        log(f"{net}: reduced precision vs fp32 on photos and scenes")
        reference = forward.REFERENCE if forward.REFERENCE in backends else "torch"
        compared = {name: backends[name] for name in (reference, *forward.REDUCED) if name in backends}
        photos = accuracy.photos_for_accuracy(config.accuracy_photos, config.accuracy_photo_size)
        for name, counts in accuracy.photo_agreement(compared, reference, photos,
                                                     net_resolution=config.accuracy_resolution).items():
            results["accuracy"]["photos"].append({"net": net, "backend": name, "reference": reference,
                                                  "photos": len(photos), **counts})
        if outputs:
            largest = max(outputs, key=lambda s: s[0] * s[1])
            at = outputs[largest]
            base = at.get(reference)
            fields = {name: accuracy.error_field(at[name], base) for name in forward.REDUCED if name in at}
            if base is not None and fields:
                for row in accuracy.scene_agreement(_skeleton_of(net), fields, tuple(largest), config.post_people):
                    results["accuracy"]["scenes"].append({"net": net, "size": list(largest), **row})
    if e2e_media is not None:
        log(f"{net}: end to end")
        chosen = {name: backends[name] for name in config.e2e_backends}
        rows = end_to_end.bench_end_to_end(chosen, e2e_media[0], e2e_media[1], net_resolution=config.e2e_resolution,
                                           video_batch=config.e2e_video_batch, cores=threads,
                                           sequential_for=(default,), log=log)
        results["end_to_end"].extend({"net": net, **row} for row in rows)


def _config_dict(config: BenchConfig, threads: int) -> dict:
    values = dataclasses.asdict(config)
    values["threads"] = threads
    return values


def write_results(results: dict, out: str | Path) -> dict[str, Path]:
    """bench.json, bench.md and forward.png in ``out``; their paths."""
    import json

    from posebridge.atomic import write_text_atomic
    from posebridge.tools.bench.forward import BACKENDS
    from posebridge.tools.bench.plot import write_forward_plot
    from posebridge.tools.bench.report import markdown

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    paths = {"json": folder / JSON_NAME, "markdown": folder / MARKDOWN_NAME, "plot": folder / PLOT_NAME}
    write_text_atomic(paths["json"], json.dumps(results, indent=1, default=_jsonable) + "\n")
    write_text_atomic(paths["markdown"], markdown(results))
    write_forward_plot(paths["plot"], results["forward"], tuple(BACKENDS))
    return paths


def _jsonable(value):
    import numpy as np

    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
