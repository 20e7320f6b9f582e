"""``posebridge run``: OpenPose inference on images, folders and videos."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from posebridge.errors import InputMediaError, PosebridgeError
from posebridge.runtime.backends import BACKENDS, PRECISIONS, open_backend
from posebridge.runtime.coco_json import CocoJsonWriter
from posebridge.runtime.hand_face import HAND_SCALE_NUMBER, HAND_SCALE_RANGE, HandFaceExtractor, hand_scales
from posebridge.runtime.frame_guard import runnable_frames
from posebridge.runtime.media import iter_media
from posebridge.runtime.openpose_json import write_openpose_json
from posebridge.runtime.pipeline import PoseEstimator
from posebridge.runtime.postprocess import VARIANTS
from posebridge.runtime.render import render_pose, rendered_file_name, save_image
from posebridge.runtime.skeletons import get_skeleton
from posebridge.runtime.streaming import DEFAULT_OVERLAP, OVERLAP_MODES, stream_poses

NAME = "run"
HELP = "run OpenPose on images, folders or videos: people as OpenPose JSON, COCO JSON and rendered images"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="weights: .caffemodel or .safetensors (with --prototxt), or .onnx")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="images, folders of images, or videos")
    parser.add_argument("--prototxt", help="the net (a file or zoo:NAME) for .caffemodel/.safetensors models")
    parser.add_argument("--backend", choices=BACKENDS,
                        help="default: onnxruntime for .onnx; else torch (tuned, with posebridge's native Winograd "
                             "kernel where it runs; without it, ncnn for nets of 3x3 convolutions such as BODY_25)")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32",
                        help="fp32 (default: the Caffe net's numbers); opt-in, faster, slightly different maps: "
                             "bf16 (torch) or int8 (nets of 3x3 convolutions such as BODY_25: torch with the native "
                             "int8 kernels; others, or --backend onnxruntime: an int8 model made once and cached); "
                             "see the README's Performance section for their measured error")
    parser.add_argument("--direct-convolutions", action="store_true",
                        help="run on torch and compute 3x3 convolutions directly instead of by Winograd's "
                             "F(6x6,3x3) (slower; float32 rounding closer to Caffe's, ~1e-6 instead of ~1e-5)")
    parser.add_argument("--net-resolution", "--net_resolution", dest="net_resolution", default="-1x368", help="WxH, -1 = from the aspect ratio (default -1x368)")
    parser.add_argument("--scale-number", type=int, default=1, help="number of scales (default 1)")
    parser.add_argument("--scale-gap", type=float, default=0.25, help="scale i is 1 - i*gap (default 0.25)")
    parser.add_argument("--variant", choices=VARIANTS, default="openpose",
                        help="post-processing: OpenPose's CPU connector (default) or the CVPR 2017 demo's")
    parser.add_argument("--skeleton", help="skeleton name when the model's family cannot be recognised")
    parser.add_argument("--batch-size", type=int, default=4, help="video frames per network call (default 4)")
    parser.add_argument("--overlap", choices=OVERLAP_MODES, default=DEFAULT_OVERLAP,
                        help="what runs beside the network: full (frames decoded in a background thread and "
                             "people assembled in a worker thread, default), decode (decoding only), none")
    parser.add_argument("--write-json", metavar="DIR", help="one <name>_keypoints.json per image or frame")
    parser.add_argument("--write-images", metavar="DIR", help="rendered skeletons, <name>_rendered.png")
    parser.add_argument("--image-format", default="png", choices=["png", "jpg"], help="rendered image format")
    parser.add_argument("--write-coco", metavar="FILE", help="all people in the COCO results format")
    parser.add_argument("--hand", metavar="HAND_MODEL",
                        help="also find hand keypoints with this hand model (.caffemodel/.safetensors/.onnx)")
    parser.add_argument("--hand-prototxt", default="zoo:hand", help="the hand net (default zoo:hand)")
    parser.add_argument("--hand-scale-number", "--hand_scale_number", dest="hand_scale_number", type=int,
                        default=HAND_SCALE_NUMBER, help="hand box scales (OpenPose's multi-scale hand; default 1)")
    parser.add_argument("--hand-scale-range", "--hand_scale_range", dest="hand_scale_range", type=float,
                        default=HAND_SCALE_RANGE, help="range of the hand box scales around 1 (default 0.4)")
    parser.add_argument("--face", metavar="FACE_MODEL",
                        help="also find face keypoints with this face model (.caffemodel/.safetensors/.onnx)")
    parser.add_argument("--face-prototxt", default="zoo:face", help="the face net (default zoo:face)")


class _Progress:
    """A one-line progress counter on a terminal; silent otherwise."""

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.count = 0
        self.start = time.perf_counter()

    def step(self, name: str) -> None:
        self.count += 1
        if self.enabled:
            rate = self.count / max(time.perf_counter() - self.start, 1e-9)
            sys.stderr.write(f"\r{self.count} frames, {rate:.1f}/s: {name[:60]:<60}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.enabled and self.count:
            sys.stderr.write("\n")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise PosebridgeError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.hand:
        hand_scales(args.hand_scale_number, args.hand_scale_range)  # refuse bad values before any model loads
    backend = open_backend(args.model, prototxt=args.prototxt, backend=args.backend, precision=args.precision,
                           winograd=not args.direct_convolutions,
                           log=lambda line: print(f"posebridge run: {line}", file=sys.stderr))
    estimator = PoseEstimator(backend, net_resolution=args.net_resolution, scale_number=args.scale_number,
                              scale_gap=args.scale_gap, variant=args.variant,
                              skeleton=get_skeleton(args.skeleton) if args.skeleton else None)
    extractor = None
    if args.hand or args.face:
        extractor = HandFaceExtractor(
            hand=open_backend(args.hand, prototxt=args.hand_prototxt) if args.hand else None,
            face=open_backend(args.face, prototxt=args.face_prototxt) if args.face else None,
            hand_scale_number=args.hand_scale_number, hand_scale_range=args.hand_scale_range)
    failures: list[str] = []
    progress = _Progress()
    coco = CocoJsonWriter(args.write_coco, estimator.skeleton) if args.write_coco else None
    people_total = 0

    def report(error: InputMediaError) -> None:
        failures.append(str(error))
        print(f"posebridge run: skipped: {error}", file=sys.stderr)

    try:
        frames = runnable_frames(iter_media(args.inputs, on_error=report), estimator, report)
        for name, image, result in stream_poses(estimator, frames, batch_size=args.batch_size,
                                                   overlap=args.overlap):
            people_total += len(result.people)
            parts = extractor.extract(image, result.people, estimator.skeleton) if extractor else {}
            if args.write_json:
                write_openpose_json(args.write_json, name, result.people, **parts)
            if args.write_images:
                rendered = render_pose(image, result.people, estimator.skeleton, **parts)
                save_image(Path(args.write_images) / rendered_file_name(name, args.image_format), rendered)
            if coco is not None:
                coco.add(name, result.people)
            progress.step(name)
    finally:
        progress.close()
    if coco is not None:
        coco.close()
    print(f"{progress.count} frames, {people_total} people ({estimator.skeleton.name}, {backend.name} backend "
          f"{getattr(backend, 'precision', 'fp32')}, "
          f"family {backend.family.name} by {backend.family.evidence})")
    if failures:
        print(f"posebridge run: {len(failures)} input(s) failed:", file=sys.stderr)
        for failure in failures:
            print(f"  {failure}", file=sys.stderr)
        return 1
    return 0
