"""posebridge bench: result structure, tables, plot, people comparison; the quick run end to end (slow).

No test asserts a timing: rows are checked for their fields and for the arithmetic of ratios.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from helpers_bench import small_net, write_small_net
from posebridge.runtime.people import Person
from posebridge.runtime.streaming import DEFAULT_OVERLAP
from posebridge.tools.bench import accuracy, forward, media, models, plot, report, timing
from posebridge.tools.bench.machine import machine_info
from posebridge.tools.cli import main


def _person(points, score=1.0):
    keypoints = np.zeros((18, 3), np.float32)
    for part, (x, y) in points.items():
        keypoints[part] = (x, y, 0.9)
    return Person(keypoints, score, len(points))


def test_compare_people_counts_same_moved_missing_and_extra():
    a = _person({0: (10, 10), 1: (20, 20), 2: (30, 30)})
    b = _person({0: (100, 100), 1: (110, 110)})
    same = accuracy.compare_people([a, b], [b, a])
    assert same["keypoints_same"] == 5 and same["same_fraction"] == 1.0 and same["people_paired"] == 2
    shifted = _person({0: (10.5, 10), 1: (23, 20), 3: (40, 40)})  # same, moved, extra; part 2 missing
    result = accuracy.compare_people([a], [shifted, b])
    assert (result["keypoints_same"], result["keypoints_moved"], result["keypoints_missing"]) == (1, 1, 1)
    assert result["keypoints_extra"] == 1 + 2  # part 3, and person b unpaired
    assert result["max_shift_px"] == pytest.approx(3.0)
    merged = accuracy.merge_counts([same, result])
    assert merged["keypoints_reference"] == 5 + 3 and merged["keypoints_same"] == 6


def test_scene_agreement_is_perfect_without_error_and_changes_with_a_large_one():
    size = (96, 160)
    zero = np.zeros((1, 57, size[0] // 8, size[1] // 8), np.float32)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.6, zero.shape).astype(np.float32)
    rows = accuracy.scene_agreement("COCO", {"exact": zero, "noisy": noise}, size, people_counts=(1, 3))
    exact = [r for r in rows if r["backend"] == "exact"]
    assert [r["people"] for r in exact] == [1, 3]
    assert all(r["same_fraction"] == 1.0 and r["keypoints_extra"] == 0 and r["keypoints_reference"] > 0 for r in exact)
    noisy = [r for r in rows if r["backend"] == "noisy"]
    assert any(r["same_fraction"] < 1.0 or r["keypoints_extra"] > 0 for r in noisy)


def test_round_robin_warms_up_then_times_each_function_in_turns():
    order = []
    functions = {"a": lambda: order.append("a"), "b": lambda: order.append("b")}
    summaries = timing.time_round_robin(functions, warmup=1, repeats=3)
    assert order == ["a", "b"] + ["a", "b"] * 3
    assert all(len(s.seconds) == 3 and s.low <= s.median <= s.high for s in summaries.values())
    assert set(summaries["a"].as_dict()) == {"median_s", "min_s", "max_s", "runs_s"}


DEFAULTS = {"coco": "torch", "body_25": "ncnn"}


def _forward_rows():
    rows = []
    for net in ("coco", "body_25"):
        for size, scale in (((92, 164), 0.25), ((184, 328), 1.0)):
            medians = {"opencv": 4.0, "torch-eager": 2.5, "torch": 2.0, "ncnn": 2.2 if net == "coco" else 1.6,
                       "onnxruntime": 2.1, "torch-bf16": 1.2, "onnxruntime-int8": 0.8}
            fastest = min(medians.values()) * scale
            for name, seconds in medians.items():
                median = seconds * scale
                rows.append({"net": net, "size": list(size), "input": f"1x3x{size[0]}x{size[1]}", "backend": name,
                             "label": forward.BACKENDS[name].label, "precision": forward.BACKENDS[name].precision,
                             "role": "default" if name == DEFAULTS[net] else forward.BACKENDS[name].role,
                             "median_s": median, "min_s": median * 0.9,
                             "max_s": median * 1.1, "runs_s": [median], "ratio_to_fastest": median / fastest,
                             "speedup_vs_opencv": 4.0 / seconds, "max_rel_error": 1e-6, "cosine": 1.0,
                             "output_shape": [1, 57, 23, 41]})
    return rows


def _results():
    results = {
        "schema": 1, "command": "posebridge bench --quick", "quick": True, "seconds": 12.0,
        "config": {"warmup": 1, "repeats": 2, "threads": 2}, "load_average": {"start": [0.5, 0.4, 0.3], "end": None},
        "machine": {"cpu_model": "Test CPU", "cpu_family_model": "25/17", "usable_cpus": 2, "physical_cores": 2,
                    "threads_per_core": 1, "memory_gib": 8.0, "flags": ["avx512f"],
                    "libraries": {"python": "3", "numpy": "2", "torch": "2", "torch_cpu_capability": "AVX512",
                                  "onnxruntime": "1", "opencv": "4", "onnx": "1", "posebridge": "0.1",
                                  "posebridge_commit": "abc"}},
        "forward": _forward_rows(), "defaults": dict(DEFAULTS),
        "accuracy": {"photos": [{"net": "coco", "backend": "torch-bf16", "keypoints_same": 9, "keypoints_reference": 10,
                                 "same_fraction": 0.9, "people_reference": 3, "people_candidate": 3}],
                     "scenes": [{"net": "coco", "backend": "torch-bf16", "people": 5, "keypoints_same": 90,
                                 "keypoints_reference": 90, "keypoints_extra": 0, "max_shift_px": 0.5}]},
        "loading": None,
        "postprocess": [{"skeleton": "COCO", "people": 20, "found": 20, "size": [368, 656], "repeats": 5,
                         **{stage: {"median_ms": 5.0, "min_ms": 4.0, "max_ms": 6.0}
                            for stage in ("upsample", "peaks", "assembly", "peaks+assembly")}, "total_ms": 10.0}],
        "end_to_end": [{"net": "coco", "backend": "torch", "input": "video", "overlap": DEFAULT_OVERLAP, "frames": 4,
                        "per_second": 0.5, "utilisation": 0.95, "people_share_of_wall": 0.02}],
    }
    results["targets"] = report.targets(results)
    return results


def test_targets_follow_the_largest_size_and_the_thresholds():
    results = _results()
    targets = {t["target"]: t for t in results["targets"]}
    fp32 = targets["coco default fp32 forward at 184x328 >= 1.8x OpenCV dnn"]
    assert fp32["met"] and fp32["measured"] == "2.00x (torch)"
    body = targets["body_25 default fp32 forward at 184x328 >= 1.8x OpenCV dnn"]
    assert body["met"] and body["measured"] == "2.50x (ncnn)"  # each net's own default engine
    results["defaults"] = {}  # results written before the record: torch was the default
    assert {t["target"]: t for t in report.targets(results)}[
        "body_25 default fp32 forward at 184x328 >= 1.8x OpenCV dnn"]["measured"] == "2.00x (torch)"
    reduced = targets["coco reduced precision at 184x328 >= 3.0x OpenCV dnn"]
    assert reduced["met"] and reduced["measured"].startswith("5.00x (onnxruntime-int8")
    post = next(t for t in results["targets"] if "post-processing" in t["target"])
    assert post["met"] and post["measured"].startswith("0.5% (10 of 2000 ms)")
    busy = next(t for t in results["targets"] if "busy" in t["target"])
    assert busy["met"] and busy["measured"].startswith("95% of 2 cores")


def test_markdown_tables_have_one_row_per_measurement_and_ratios_to_the_fastest():
    text = report.markdown(_results())
    assert text.startswith("## posebridge bench (quick)")
    for heading in ("### Targets", "### Network forward", "### Reduced precision", "### Post-processing",
                    "### End to end"):
        assert heading in text
    forward_rows = [line for line in text.splitlines() if line.startswith("| 1x3x")]
    assert len(forward_rows) == len(_forward_rows())
    cells = [line.strip("|").split("|") for line in forward_rows]
    assert all(len(row) == 8 for row in cells)
    fastest = [row for row in cells if row[1].strip() == "onnxruntime-int8"]
    assert all(row[5].strip() == "1.00" for row in fastest)
    defaults = [row[1].strip() for row in cells if row[1].strip().endswith("(default)")]
    assert defaults == ["torch (default)"] * 2 + ["ncnn (default)"] * 2
    opencv = [row for row in cells if row[1].strip() == "opencv"]
    assert all(row[5].strip() == "5.00" and row[6].strip() == "1.00" for row in opencv)
    for line in text.splitlines():  # every table row has as many cells as its header
        if line.startswith("|"):
            assert line.endswith("|")


def test_plot_draws_one_panel_per_net_and_writes_a_png(tmp_path):
    image = plot.forward_plot(_forward_rows(), tuple(forward.BACKENDS))
    assert image.dtype == np.uint8 and image.shape[1] == 2 * plot.PANEL_SIZE[0]
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 6  # axes, text and coloured lines
    path = tmp_path / "forward.png"
    plot.write_forward_plot(path, _forward_rows())
    assert cv2.imread(str(path)).shape == image.shape
    assert plot.nice_ticks(0, 4.6) == [0, 1, 2, 3, 4, 5]
    assert len(set(plot.COLOURS)) == len(plot.COLOURS) >= len(forward.BACKENDS)  # one colour per backend


def test_media_writes_decodable_images_and_a_video(tmp_path):
    from posebridge.runtime.media import iter_media

    images = media.write_image_folder(tmp_path / "images", 3, (96, 64))
    assert len(images) == 3
    video = media.write_video(tmp_path / "clip", 4, (96, 64))
    frames = list(iter_media([video]))
    assert len(frames) == 4 and frames[0][1].shape == (64, 96, 3)
    assert not np.array_equal(frames[0][1], frames[-1][1])


def test_forward_rows_on_a_small_net(tmp_path):
    prototxt, caffemodel = write_small_net(tmp_path)
    files = models.NetFiles("small", prototxt, caffemodel)
    models.prepare_onnx(files, tmp_path, small_net(tmp_path), quick=True)
    names = ("opencv", "torch-eager", "torch", "ncnn", "torch-bf16", "onnxruntime", "onnxruntime-int8")
    backends, setup = forward.build_backends(files, names, threads=1)
    assert set(setup) == set(names)
    rows, outputs = forward.bench_forward(backends, [(32, 48), (40, 40)], warmup=1, repeats=2, default="ncnn")
    assert {row["backend"] for row in rows if row["role"] == "default"} == {"ncnn"}
    assert len(rows) == 2 * len(names) and set(outputs) == {(32, 48), (40, 40)}
    for size in ((32, 48), (40, 40)):
        at = [row for row in rows if row["size"] == list(size)]
        assert min(row["ratio_to_fastest"] for row in at) == 1.0
        reference = next(row for row in at if row["backend"] == "torch-eager")
        assert reference["max_rel_error"] == 0.0
        for row in at:
            assert row["min_s"] <= row["median_s"] <= row["max_s"] and len(row["runs_s"]) == 2
            limit = 1e-4 if row["precision"] == "fp32" else 0.5
            assert row["max_rel_error"] <= limit, row


def test_machine_info_names_cpu_cores_and_libraries():
    info = machine_info()
    assert info["usable_cpus"] >= 1 and info["logical_cpus"] >= info["physical_cores"] >= 1
    assert {"torch", "onnxruntime", "opencv", "ncnn", "numpy", "python"} <= set(info["libraries"])


@pytest.mark.parametrize("argv, message", [
    (["bench", "--only", "nothing"], "unknown section"),
    (["bench", "--repeats", "0"], "--repeats must be at least 1"),
    (["bench", "--backends", "tensorflow"], "unknown backend"),
])
def test_bad_options_exit_2_with_one_line(argv, message, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_an_output_folder_that_cannot_be_made_fails_before_measuring(capsys, tmp_path, monkeypatch):
    from posebridge.tools import bench

    monkeypatch.setattr(bench, "run_bench", lambda *a, **k: pytest.fail("measured before checking --out"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert main(["bench", "--quick", "--out", str(blocker / "out")]) == 2
    err = capsys.readouterr().err
    assert "the output folder cannot be made or written to" in err and "Traceback" not in err


@pytest.mark.slow
def test_quick_bench_writes_json_table_and_plot(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["bench", "--quick", "--out", str(out), "--work", str(tmp_path / "work")]) == 0
    results = json.loads((out / "bench.json").read_text())
    assert results["quick"] is True and results["schema"] == 1
    assert {"machine", "config", "loading", "forward", "accuracy", "postprocess", "end_to_end", "targets"} <= set(results)
    sizes = {tuple(size) for size in results["config"]["sizes"]}
    combos = {(row["net"], tuple(row["size"]), row["backend"]) for row in results["forward"]}
    assert combos == {(net, size, backend) for net in results["config"]["nets"] for size in sizes
                      for backend in results["config"]["backends"]}
    assert {row["people"] for row in results["postprocess"]} == {1, 5, 20}
    assert {(row["backend"], row["input"]) for row in results["end_to_end"]} >= {("torch", "folder"), ("torch", "video")}
    assert all(row["frames"] > 0 and row["per_second"] > 0 for row in results["end_to_end"])
    assert results["loading"]["caffemodel_bytes"] > 200e6 and "posebridge-torch" in results["loading"]["ready"]
    reduced = {(row["net"], row["backend"]) for row in results["accuracy"]["photos"]}
    assert reduced == {(net, b) for net in results["config"]["nets"] for b in ("torch-bf16", "torch-int8", "onnxruntime-int8")}
    text = (out / "bench.md").read_text()
    assert text == report.markdown(results)
    assert cv2.imread(str(out / "forward.png")) is not None
    assert "### Network forward" in capsys.readouterr().out


def test_backends_the_machine_cannot_run_are_skipped_and_said(monkeypatch):
    from posebridge.runtime import native_winograd
    from posebridge.tools.bench import QUICK, forward

    monkeypatch.setattr(native_winograd, "availability", lambda kernel="wino63": (False, "the CPU lacks avx512_vnni"))
    heard = []
    config, skipped = forward.without_unavailable(QUICK, heard.append)
    assert skipped == {"torch-int8": "the CPU lacks avx512_vnni"} and heard == ["skipping torch-int8: the CPU lacks avx512_vnni"]
    assert "torch-int8" not in config.backends and "torch-int8" not in config.e2e_backends
    assert set(QUICK.backends) - set(config.backends) == {"torch-int8"}
    monkeypatch.setattr(native_winograd, "availability", lambda kernel="wino63": (True, ""))
    assert forward.without_unavailable(QUICK) == (QUICK, {})


def test_the_report_names_skipped_backends():
    from posebridge.tools.bench import report

    results = {"machine": {"cpu_model": "x", "cpu_family_model": "1/2", "usable_cpus": 2, "physical_cores": 2,
                           "threads_per_core": 1, "memory_gib": 1.0, "flags": [],
                           "libraries": {k: "v" for k in ("python", "numpy", "torch", "torch_cpu_capability",
                                                          "onnxruntime", "opencv", "onnx", "posebridge",
                                                          "posebridge_commit")}},
               "config": {"warmup": 1, "repeats": 2, "threads": 2}, "seconds": 3.0,
               "skipped_backends": {"torch-int8": "the CPU lacks avx512_vnni"}}
    lines = report.machine_section(results)
    assert "Not measured on this machine: torch-int8 (the CPU lacks avx512_vnni)." in lines
    results["skipped_backends"] = {}
    assert not any(line.startswith("Not measured") for line in report.machine_section(results))
