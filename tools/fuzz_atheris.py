"""Coverage-guided fuzzing of posebridge's readers with atheris (libFuzzer for Python).

Not part of the test suite: run it as a separate command for a fixed time or number of runs::

    pip install atheris
    python -m posebridge.tools.fuzz_atheris --target model_file --seconds 120
    python -m posebridge.tools.fuzz_atheris --target all --seconds 600   # each target in turn

Targets (see :mod:`posebridge.tools.fuzz_targets`): ``prototxt`` (parse_prototxt_text),
``caffemodel`` (parse_weights), ``model_file`` (load_graph on bytes, then shapes),
``weights_on_graph`` (parse_weights + match_weights + conversion onto the seed net),
``convert_and_run`` (load, synthesise, convert, one forward pass). A PosebridgeError is a clean
refusal; any other exception, a crash, an input running longer than ``--timeout`` seconds or
using more than ``--rss-limit-mb`` is a finding. libFuzzer writes each finding to
``--artifacts`` (``crash-*``, ``timeout-*``, ``oom-*``); copy the small ones into
``tests/fuzz/corpus/<target>/`` so that ``tests/fuzz/test_corpus.py`` replays them.

The working corpus starts from the seed files (``posebridge synth`` caffemodels and their
prototxts) plus ``tests/fuzz/corpus/<target>/``, and grows in ``--work-dir/<target>``.
libFuzzer's last line (``#runs DONE cov: ... ft: ... corp: ... exec/s: ...``) gives the figures.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

TARGETS = ("prototxt", "caffemodel", "model_file", "weights_on_graph", "convert_and_run")
#: Seed files each target starts from.
SEEDS_FOR = {
    "prototxt": ("seed.prototxt", "seed_v1.prototxt"),
    "caffemodel": ("seed.caffemodel", "seed_v1.caffemodel"),
    "model_file": ("seed.prototxt", "seed_v1.prototxt", "seed.caffemodel", "seed_v1.caffemodel"),
    "weights_on_graph": ("seed.caffemodel",),
    "convert_and_run": ("seed.prototxt", "seed_v1.prototxt"),
}
REPO_CORPUS = Path(__file__).resolve().parent.parent / "tests" / "fuzz" / "corpus"
MAX_INPUT_BYTES = 1 << 17
#: Packages whose Python code atheris instruments for coverage (protobuf's text_format is Python).
INSTRUMENTED = ("posebridge", "google.protobuf")


def _one_target(target: str, seconds: int | None, runs: int | None, work_dir: Path, artifacts: Path,
                timeout: int, rss_limit_mb: int, extra: list[str]) -> int:
    """Fuzz ``target`` in this process (atheris.Fuzz never returns: libFuzzer exits)."""
    import atheris

    with atheris.instrument_imports(include=list(INSTRUMENTED)):
        import posebridge.converter.network  # noqa: F401 (instrumented with the readers)
        import posebridge.prototxt.synth  # noqa: F401
        from posebridge.tools import fuzz_targets

    seeds = fuzz_targets.write_seeds(work_dir / "seeds")
    corpus = work_dir / target
    corpus.mkdir(parents=True, exist_ok=True)
    for name in SEEDS_FOR[target]:
        shutil.copy(seeds[name], corpus / name)
    graph = None
    if target == "weights_on_graph":
        from posebridge.prototxt.loader import graph_from_bytes

        graph = graph_from_bytes(seeds["seed.prototxt"].read_bytes())
    run = {
        "prototxt": fuzz_targets.target_prototxt_text,
        "caffemodel": fuzz_targets.target_caffemodel,
        "model_file": fuzz_targets.target_model_file,
        "weights_on_graph": lambda data: fuzz_targets.target_weights_on_graph(data, graph),
        "convert_and_run": fuzz_targets.target_convert_and_run,
    }[target]
    if target == "convert_and_run":
        import torch

        torch.set_num_threads(1)

    def test_one_input(data: bytes) -> None:
        run(data)

    artifacts.mkdir(parents=True, exist_ok=True)
    argv = [sys.argv[0], str(corpus)]
    regression = REPO_CORPUS / target
    if regression.is_dir():
        argv.append(str(regression))
    argv += [f"-timeout={timeout}", f"-rss_limit_mb={rss_limit_mb}", f"-max_len={MAX_INPUT_BYTES}",
             f"-artifact_prefix={artifacts}/{target}-", "-print_final_stats=1"]
    if seconds:
        argv.append(f"-max_total_time={seconds}")
    if runs:
        argv.append(f"-runs={runs}")
    argv += extra
    atheris.Setup(argv, test_one_input)
    atheris.Fuzz()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=(*TARGETS, "all"), default="all")
    parser.add_argument("--seconds", type=int, default=60, help="time per target (libFuzzer -max_total_time)")
    parser.add_argument("--runs", type=int, default=None, help="inputs per target (libFuzzer -runs)")
    parser.add_argument("--work-dir", type=Path, default=Path(tempfile.gettempdir()) / "posebridge-fuzz",
                        help="growing corpus and seeds (default: $TMPDIR/posebridge-fuzz)")
    parser.add_argument("--artifacts", type=Path, default=None, help="findings (default: WORK_DIR/artifacts)")
    parser.add_argument("--timeout", type=int, default=10, help="seconds one input may take")
    parser.add_argument("--rss-limit-mb", type=int, default=2048, help="memory one process may use")
    args, extra = parser.parse_known_args(argv)
    artifacts = args.artifacts or args.work_dir / "artifacts"
    if args.target != "all":
        return _one_target(args.target, args.seconds, args.runs, args.work_dir, artifacts, args.timeout,
                           args.rss_limit_mb, extra)
    failed = []
    for target in TARGETS:  # one process each: libFuzzer exits when it is done
        command = [sys.executable, "-m", "posebridge.tools.fuzz_atheris", "--target", target,
                   "--seconds", str(args.seconds), "--work-dir", str(args.work_dir), "--artifacts", str(artifacts),
                   "--timeout", str(args.timeout), "--rss-limit-mb", str(args.rss_limit_mb)]
        if args.runs:
            command += ["--runs", str(args.runs)]
        print(f"== {target}", flush=True)
        if subprocess.run(command + extra, env=os.environ.copy()).returncode != 0:
            failed.append(target)
    print("targets with findings: " + (", ".join(failed) if failed else "none"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
