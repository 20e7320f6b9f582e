"""The benchmark's results as Markdown: tables of medians, spreads and ratios to the fastest peer.

Every table is built from ``bench.json``'s dictionary alone, so a saved result can be rendered
again (:func:`markdown`).
"""

from __future__ import annotations

from collections.abc import Sequence

from posebridge.tools.bench.forward import BACKENDS, DEFAULT_BACKEND

#: Targets of the speed work (issue 7).
FP32_SPEEDUP_TARGET = 1.8
REDUCED_SPEEDUP_TARGET = 3.0
POSTPROCESS_SHARE_TARGET = 0.05
CPU_BUSY_TARGET = 0.9


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """A Markdown table (cells formatted with str)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines.extend("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows)
    return lines


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1e3:,.0f}"


def _error(value: float | None) -> str:
    return "-" if value is None else f"{value:.1e}"


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _largest(rows: Sequence[dict]) -> list[int] | None:
    sizes = [row["size"] for row in rows]
    return max(sizes, key=lambda s: s[0] * s[1]) if sizes else None


def forward_section(results: dict) -> list[str]:
    lines = ["### Network forward", "",
             "Batch 1, seeded noise input; median of the timed runs (min-max), ratio to the fastest backend "
             "at that size, speed-up over OpenCV dnn, and the error against the fp32 converted net "
             "(max abs error / max abs value, as the parity tool reports it).", ""]
    for net in dict.fromkeys(row["net"] for row in results["forward"]):
        lines += [f"**{net}**", ""]
        rows = []
        for row in (r for r in results["forward"] if r["net"] == net):
            backend = row["backend"] + (" (default)" if row.get("role") == "default" else "")
            rows.append((row["input"], backend, row["precision"], _ms(row["median_s"]),
                         f"{_ms(row['min_s'])}-{_ms(row['max_s'])}", _ratio(row["ratio_to_fastest"]),
                         _ratio(row["speedup_vs_opencv"]), _error(row["max_rel_error"])))
        lines += table(("input", "backend", "precision", "median ms", "min-max ms", "x fastest", "vs OpenCV",
                        "max rel. error"), rows)
        lines.append("")
    return lines


def accuracy_section(results: dict) -> list[str]:
    accuracy = results.get("accuracy") or {}
    lines = ["### Reduced precision: error and effect on keypoints", "",
             "Map error at the largest size (vs fp32). Photos: people from the synthetic-weight net's maps, "
             "fp32 vs this backend, keypoints within 1 px (random weights give ~100 weak 'people' per photo: a "
             "stress test). Scenes: ground-truth maps of 1/5/20 people plus this backend's measured error field.",
             ""]
    rows = []
    for entry in accuracy.get("photos", []):
        forward = [r for r in results["forward"] if r["net"] == entry["net"] and r["backend"] == entry["backend"]]
        largest = _largest(forward)
        at_largest = next((r for r in forward if r["size"] == largest), None)
        scenes = [s for s in accuracy.get("scenes", []) if s["net"] == entry["net"] and s["backend"] == entry["backend"]]
        scene_text = ", ".join(f"{s['people']}: {s['keypoints_same']}/{s['keypoints_reference']}"
                               f" (+{s['keypoints_extra']}, max {s['max_shift_px']:.1f} px)" for s in scenes) or "-"
        rows.append((entry["net"], entry["backend"],
                     _error(at_largest["max_rel_error"]) if at_largest else "-",
                     f"{at_largest['cosine']:.6f}" if at_largest else "-",
                     f"{entry['keypoints_same']}/{entry['keypoints_reference']} ({entry['same_fraction'] * 100:.1f}%)",
                     f"{entry['people_reference']} -> {entry['people_candidate']}", scene_text))
    lines += table(("net", "backend", "map max rel. error", "cosine", "photo keypoints same",
                    "photo people", "scene keypoints same (people: same/truth)"), rows)
    return lines + [""]


def loading_section(results: dict) -> list[str]:
    loading = results.get("loading")
    if not loading:
        return []
    read = loading["read"]
    lines = ["### Loading", "",
             f"{loading['net']} caffemodel, {loading['caffemodel_bytes'] / 1e6:.0f} MB, in the page cache; "
             f"medians of {loading['runs']} fresh processes; peak memory = the process's high-water mark (VmHWM) "
             "over its baseline after the imports. Ready = files to a net that can run a forward (posebridge-torch: "
             "read, convert, tune and self-check; -untuned: without tune and self-check; posebridge-ncnn: read, "
             "convert, write for ncnn, load there and self-check).",
             ""]
    peak = read.get("vmhwm_over_baseline_bytes") or read.get("rss_over_baseline_bytes", 0)
    rows = [("posebridge read_weights (+ match to the graph)", f"{read['read_s']:.2f} (+{read['match_s']:.2f})", "-",
             f"{peak / 1e6:.0f}")]
    for mode, entry in loading["ready"].items():
        rows.append((f"ready: {mode}", f"{entry['total_s']:.2f}", f"{entry['min_total_s']:.2f}-{entry['max_total_s']:.2f}",
                     f"{entry['peak_over_baseline_bytes'] / 1e6:.0f}"))
    lines += table(("step", "median s", "min-max s", "peak MB"), rows)
    return lines + [""]


def postprocess_section(results: dict) -> list[str]:
    rows = [(r["skeleton"], r["people"], r["found"], f"{r['upsample']['median_ms']:.1f}", f"{r['peaks']['median_ms']:.1f}",
             f"{r['assembly']['median_ms']:.1f}", f"{r['total_ms']:.1f}",
             f"{r['peaks+assembly']['min_ms']:.1f}-{r['peaks+assembly']['max_ms']:.1f}")
            for r in results.get("postprocess", [])]
    if not rows:
        return []
    size = results["postprocess"][0]["size"]
    lines = ["### Post-processing", "",
             f"Ground-truth scenes at {size[0]}x{size[1]}: x8 cubic upsampling, NMS peaks, OpenPose's CPU "
             "connector; median ms (peaks+assembly min-max).", ""]
    lines += table(("skeleton", "people", "found", "upsample", "peaks", "assembly", "total", "peaks+assembly min-max"),
                   rows)
    return lines + [""]


def end_to_end_section(results: dict) -> list[str]:
    rows_in = results.get("end_to_end", [])
    if not rows_in:
        return []
    from posebridge.runtime.streaming import DEFAULT_OVERLAP

    default = DEFAULT_OVERLAP
    lines = ["### End to end", "",
             "`posebridge run`'s pipeline, outputs not written; overlap: full = decoding in a background thread and "
             "assembly in a worker thread (default), decode = decoding only, none = one thread. CPU = process CPU time / wall "
             "time / cores. Assembly share = assembly seconds / wall seconds (synthetic weights make ~100 weak "
             "people per frame; real scenes cost far less: see post-processing). x fastest compares the default "
             "mode's rows.", ""]
    rows = []
    for net in dict.fromkeys(r["net"] for r in rows_in):
        group = [r for r in rows_in if r["net"] == net]
        for kind in ("folder", "video"):
            members = [r for r in group if r["input"] == kind and r["overlap"] == default]
            best = max((r["per_second"] for r in members), default=None)
            for r in (x for x in group if x["input"] == kind):
                rows.append((net, kind, r["backend"], r["overlap"], r["frames"], f"{r['per_second']:.2f}",
                             _ratio(best / r["per_second"]) if best else "-",
                             f"{r['utilisation'] * 100:.0f}%", f"{r['people_share_of_wall'] * 100:.1f}%"))
    lines += table(("net", "input", "backend", "overlap", "frames", "per second", "x fastest", "CPU",
                    "assembly share"), rows)
    return lines + [""]


def _default_of(results: dict, net: str) -> str:
    """The net's default fp32 engine as the bench recorded it (torch for results that predate the record)."""
    return (results.get("defaults") or {}).get(net, DEFAULT_BACKEND)


def targets(results: dict) -> list[dict]:
    """Each target of the speed work with its measured value and whether it is met."""
    found = []
    forward = results.get("forward", [])
    for net in dict.fromkeys(row["net"] for row in forward):
        rows = [r for r in forward if r["net"] == net]
        largest = _largest(rows)
        at = {r["backend"]: r for r in rows if r["size"] == largest}
        size_text = f"{largest[0]}x{largest[1]}" if largest else "?"
        default = _default_of(results, net)
        if default in at and at[default]["speedup_vs_opencv"] is not None:
            value = at[default]["speedup_vs_opencv"]
            found.append({"target": f"{net} default fp32 forward at {size_text} >= {FP32_SPEEDUP_TARGET}x OpenCV dnn",
                          "measured": f"{value:.2f}x ({default})", "met": value >= FP32_SPEEDUP_TARGET})
        reduced = [r for name, r in at.items() if BACKENDS[name].precision != "fp32" and r["speedup_vs_opencv"]]
        if reduced:
            best = max(reduced, key=lambda r: r["speedup_vs_opencv"])
            found.append({"target": f"{net} reduced precision at {size_text} >= {REDUCED_SPEEDUP_TARGET}x OpenCV dnn",
                          "measured": f"{best['speedup_vs_opencv']:.2f}x ({best['backend']}, "
                                      f"max rel. error {best['max_rel_error']:.1e})",
                          "met": best["speedup_vs_opencv"] >= REDUCED_SPEEDUP_TARGET})
    from posebridge.runtime.streaming import DEFAULT_OVERLAP

    video = [r for r in results.get("end_to_end", []) if r["input"] == "video" and r["overlap"] == DEFAULT_OVERLAP
             and r["backend"] == _default_of(results, r["net"])]
    post = [r for r in results.get("postprocess", []) if r["people"] == max((p["people"] for p in results.get("postprocess", [])), default=0)]
    for row in video:
        frame_ms = 1e3 / row["per_second"]
        scene = next((p for p in post if p["skeleton"].replace("_", "").lower() == row["net"].replace("_", "").lower()), None)
        if scene is not None:
            share = scene["total_ms"] / frame_ms
            found.append({"target": f"{row['net']} post-processing ({scene['people']}-person scene) < "
                                    f"{POSTPROCESS_SHARE_TARGET:.0%} of end-to-end frame time",
                          "measured": f"{share * 100:.1f}% ({scene['total_ms']:.0f} of {frame_ms:.0f} ms); "
                                      f"synthetic-net frames: {row['people_share_of_wall'] * 100:.1f}%",
                          "met": share < POSTPROCESS_SHARE_TARGET})
        found.append({"target": f"{row['net']} video keeps the cores busy (>= {CPU_BUSY_TARGET:.0%} CPU)",
                      "measured": f"{row['utilisation'] * 100:.0f}% of {results['machine']['usable_cpus']} cores, "
                                  f"{row['per_second']:.2f} frames/s",
                      "met": row["utilisation"] >= CPU_BUSY_TARGET})
    return found


def targets_section(results: dict) -> list[str]:
    rows = [(t["target"], t["measured"], "yes" if t["met"] else "**no**") for t in results.get("targets", [])]
    if not rows:
        return []
    return ["### Targets", ""] + table(("target", "measured", "met"), rows) + [""]


def machine_section(results: dict) -> list[str]:
    machine = results["machine"]
    libraries = machine["libraries"]
    load = results.get("load_average", {})
    return [
        f"Machine: {machine['cpu_model']} (family/model {machine['cpu_family_model']}), "
        f"{machine['usable_cpus']} usable CPUs ({machine['physical_cores']} cores x {machine['threads_per_core']} "
        f"threads), {machine['memory_gib']} GiB; flags: {', '.join(machine['flags']) or 'none of interest'}.",
        f"Libraries: Python {libraries['python']}, numpy {libraries['numpy']}, torch {libraries['torch']} "
        f"({libraries['torch_cpu_capability']}), onnxruntime {libraries['onnxruntime']}, OpenCV {libraries['opencv']}, "
        f"onnx {libraries['onnx']}, ncnn {libraries.get('ncnn', '-')}; "
        f"native Winograd kernel: {libraries.get('native_winograd', '-')}; "
        f"posebridge {libraries['posebridge']} ({libraries['posebridge_commit']}).",
        f"Load average (1/5/15 min) at start {load.get('start')}, at end {load.get('end')}; "
        f"{results['config']['warmup']} warm-up + {results['config']['repeats']} timed runs per forward, "
        f"{results['config']['threads']} threads per backend; total {results['seconds']:.0f} s.",
        *([f"Not measured on this machine: "
           + "; ".join(f"{name} ({why})" for name, why in results["skipped_backends"].items()) + "."]
          if results.get("skipped_backends") else []),
        "",
    ]


def markdown(results: dict) -> str:
    """The whole report."""
    lines = [f"## posebridge bench{' (quick)' if results.get('quick') else ''}", "",
             f"Command: `{results['command']}`", ""]
    lines += machine_section(results)
    for section in (targets_section, forward_section, accuracy_section, loading_section, postprocess_section,
                    end_to_end_section):
        lines += section(results)
    return "\n".join(lines).rstrip() + "\n"
