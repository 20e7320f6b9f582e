"""The inference pipeline: keypoints in image pixels, scales, batching, backends, the run command."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import cv2
import numpy as np
import pytest

from posebridge.converter.model_family import ModelFamily
from posebridge.runtime.backends import open_backend
from posebridge.runtime.openpose_json import write_openpose_json
from posebridge.runtime.pipeline import PoseEstimator
from posebridge.runtime.preprocess import net_input_sizes
from posebridge.runtime.scenes import ScenePerson, render_net_output, standing_person
from posebridge.runtime.skeletons import get_skeleton
from posebridge.tools.cli import main

COCO = get_skeleton("COCO")


@dataclass
class SceneBackend:
    """An ideal network: outputs the ground-truth maps of people given in image pixels."""

    image_size: tuple[int, int]  # (w, h)
    people: list[ScenePerson]
    net_resolution: str = "-1x368"
    scale_number: int = 1
    scale_gap: float = 0.25
    name: str = "scene"
    family: ModelFamily = field(default_factory=lambda: ModelFamily("COCO", "test", "COCO", None, 6, (0, 19), (19, 57)))
    calls: list = field(default_factory=list)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        self.calls.append(batch.shape)
        net_size = (batch.shape[3], batch.shape[2])
        spec = next(s for s in net_input_sizes(self.image_size, net_resolution=self.net_resolution,
                                               scale_number=self.scale_number, scale_gap=self.scale_gap)
                    if s.net_size == net_size)
        scaled = []
        for person in self.people:
            keypoints = np.array(person.keypoints, dtype=np.float64)
            keypoints[:, :2] *= spec.scale
            scaled.append(ScenePerson(keypoints, person.amplitude))
        maps = render_net_output(scaled, COCO, (batch.shape[2], batch.shape[3]))
        return np.repeat(maps, batch.shape[0], axis=0)


def _scene(image_size=(641, 427)):
    w, h = image_size
    return [standing_person(COCO, (w * 0.3, h * 0.55), h * 0.7), standing_person(COCO, (w * 0.72, h * 0.5), h * 0.6)]


#: OpenPose 1.7 reports a part seen at pixel index x as x + 0.5 (the pixel's centre: its NMS adds
#: 0.5 / scaleNetToOutput before scaling to the image), so the truth is shifted by half a pixel.
OPENPOSE_PIXEL_CENTRE = 0.5


def _check_people(found, truth, tolerance=1.0):
    assert len(found) == len(truth)
    for person in truth:
        expected = person.keypoints[:, :2] + OPENPOSE_PIXEL_CENTRE
        distances = [np.abs(p.keypoints[:, :2] - expected).max() for p in found]
        best = found[int(np.argmin(distances))]
        assert np.all(best.keypoints[:, 2] > 0)
        error = np.abs(best.keypoints[:, :2] - expected).max()
        assert error <= tolerance, f"keypoint {error:.2f} px from the truth"


@pytest.mark.parametrize("image_size,resolution", [((641, 427), "-1x368"), ((533, 301), "-1x256"),
                                                    ((800, 451), "656x368"), ((367, 245), "-1x368")])
def test_keypoints_come_back_in_image_pixels(image_size, resolution):
    """Within one net-input pixel (1 / scale image pixels; 1 px when enlarging) of the truth."""
    truth = _scene(image_size)
    backend = SceneBackend(image_size, truth, net_resolution=resolution)
    estimator = PoseEstimator(backend, net_resolution=resolution)
    image = np.zeros((image_size[1], image_size[0], 3), np.uint8)
    scale = net_input_sizes(image_size, net_resolution=resolution)[0].scale
    _check_people(estimator(image).people, truth, tolerance=max(1.0, 1.0 / scale))


def test_several_scales_are_merged():
    """OpenPose's CPU merge stretches each scale's whole map (padding included) onto scale 0's
    grid, so scales whose padding differs are misaligned by a computable amount; the people
    still come back within one net pixel plus that misalignment."""
    image_size = (641, 427)
    truth = _scene(image_size)
    backend = SceneBackend(image_size, truth, scale_number=3, scale_gap=0.25)
    estimator = PoseEstimator(backend, scale_number=3, scale_gap=0.25)
    result = estimator(np.zeros((427, 641, 3), np.uint8))
    assert len(backend.calls) == 3 and len({c[2:] for c in backend.calls}) == 3
    specs = net_input_sizes(image_size, scale_number=3, scale_gap=0.25)
    base = specs[0]
    misalignment = max(abs(spec.scale * base.net_size[axis] / spec.net_size[axis] - base.scale) / base.scale
                       * image_size[axis] for spec in specs for axis in (0, 1))
    _check_people(result.people, truth, tolerance=1.0 / base.scale + misalignment)


def test_frames_of_one_size_share_network_calls():
    image_size = (320, 240)
    truth = _scene(image_size)
    backend = SceneBackend(image_size, truth, net_resolution="-1x240")
    estimator = PoseEstimator(backend, net_resolution="-1x240")
    frames = [np.zeros((240, 320, 3), np.uint8)] * 3
    results = estimator.estimate(frames, ["a", "b", "c"])
    assert backend.calls == [(3, 3, 240, 320)]
    assert [r.name for r in results] == ["a", "b", "c"]
    for result in results:
        _check_people(result.people, truth)


@pytest.fixture(scope="module")
def coco_files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("coco")
    caffemodel = folder / "coco.caffemodel"
    assert main(["synth", "zoo:coco", "-o", str(caffemodel), "--seed", "3"]) == 0
    return caffemodel


def _photo(seed=0, size=(203, 157)):
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), (0, 0), 3)
    return cv2.normalize(image, None, 0, 255, cv2.NORM_MINMAX)


@pytest.fixture(scope="module")
def coco_onnx(coco_files, tmp_path_factory):
    from posebridge.converter.api import convert
    from posebridge.converter.onnx_export import export_onnx

    path = tmp_path_factory.mktemp("onnx") / "coco.onnx"
    export_onnx(convert("zoo:coco", coco_files), path, sizes=((64, 80),), caffemodel=coco_files)
    return path


def test_every_backend_gives_the_same_people(coco_files, coco_onnx, tmp_path):
    """torch, ncnn, OpenCV dnn and onnxruntime: the same maps within float tolerance, the same
    people, and valid OpenPose JSON that agrees number by number."""
    image = _photo()
    backends = {"torch": open_backend(coco_files, prototxt="zoo:coco", backend="torch"),
                "ncnn": open_backend(coco_files, prototxt="zoo:coco", backend="ncnn"),
                "opencv": open_backend(coco_files, prototxt="zoo:coco", backend="opencv"),
                "onnxruntime": open_backend(coco_onnx)}
    results = {}
    for name, backend in backends.items():
        assert backend.family.name == "COCO" and backend.family.skeleton == "COCO", name
        results[name] = PoseEstimator(backend, net_resolution="-1x96", keep_maps=True)(image)
    reference = results["torch"]
    assert reference.people, "the synthetic net should produce some people to compare"
    for name, result in results.items():
        scale = np.abs(reference.maps).max()
        assert np.abs(result.maps - reference.maps).max() <= 1e-4 * scale, name
        assert len(result.people) == len(reference.people), name
        for a, b in zip(result.people, reference.people):
            np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1e-2, err_msg=name)
        path = write_openpose_json(tmp_path / name, "frame", result.people)
        document = json.loads(path.read_text())
        assert document["version"] == 1.3
        flat = [v for person in document["people"] for v in person["pose_keypoints_2d"]]
        expected = [v for person in reference.people for v in person.keypoints.reshape(-1)]
        np.testing.assert_allclose(flat, expected, atol=1e-2, err_msg=name)


def test_run_command_writes_outputs_and_survives_bad_inputs(coco_files, tmp_path, capsys):
    folder = tmp_path / "inputs"
    folder.mkdir()
    cv2.imwrite(str(folder / "good.png"), _photo(1, (120, 90)))
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "empty.png").write_bytes(b"")
    out = tmp_path / "out"
    code = main(["run", str(coco_files), str(folder), "--prototxt", "zoo:coco", "--net-resolution", "-1x64",
                 "--write-json", str(out), "--write-images", str(out)])
    captured = capsys.readouterr()
    assert code == 1
    assert "2 input(s) failed" in captured.err and "broken.jpg" in captured.err and "empty.png" in captured.err
    document = json.loads((out / "good_keypoints.json").read_text())
    assert document["version"] == 1.3 and isinstance(document["people"], list)
    assert cv2.imread(str(out / "good_rendered.png")).shape == (90, 120, 3)
    assert sorted(p.name for p in out.iterdir()) == ["good_keypoints.json", "good_rendered.png"]


def test_run_command_direct_convolutions_flag_reaches_the_backend(coco_files, tmp_path, monkeypatch):
    from posebridge.tools.commands import run as run_command

    opened = []
    real_open = run_command.open_backend

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr(run_command, "open_backend", recording_open)
    image = tmp_path / "in.png"
    cv2.imwrite(str(image), _photo(1, (120, 90)))
    for flags in ([], ["--direct-convolutions"]):
        assert main(["run", str(coco_files), str(image), "--prototxt", "zoo:coco", "--net-resolution", "-1x64",
                     "--write-json", str(tmp_path / f"out{len(flags)}"), *flags]) == 0
    with_winograd, direct = opened
    assert with_winograd._runner.winograd_convs > 0 and direct._runner.winograd_convs == 0
    batch = np.random.default_rng(4).uniform(-0.5, 0.5, (2, 3, 61, 83)).astype(np.float32)
    maps, direct_maps = with_winograd.infer(batch), direct.infer(batch)
    assert 0 < np.abs(maps - direct_maps).max() <= 1e-4 * np.abs(direct_maps).max()


def test_run_command_needs_prototxt_for_caffemodel(coco_files, tmp_path, capsys):
    image = tmp_path / "x.png"
    cv2.imwrite(str(image), _photo())
    assert main(["run", str(coco_files), str(image)]) == 2
    assert "--prototxt" in capsys.readouterr().err
