"""Replay the fuzzing corpus: every input found (or written) as a regression keeps its outcome.

``tests/fuzz/corpus/<target>/`` holds inputs for the target of that name in
posebridge.tools.fuzz_targets (the atheris runner reads the same folders). ``expected.json``
says which must be refused with a PosebridgeError and which must read; every file, listed or
not, must end in one of the two and never in another exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from posebridge.prototxt.loader import graph_from_bytes
from posebridge.tools import fuzz_targets

CORPUS = Path(__file__).with_name("corpus")
EXPECTED: dict[str, str] = {k: v for k, v in json.loads((CORPUS / "expected.json").read_text()).items()
                            if not k.startswith("_")}
CASES = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*") if p.is_file())


def _run(target: str, data: bytes) -> bool:
    if target == "weights_on_graph":
        graph = graph_from_bytes(fuzz_targets.SEED_PROTOTXT.encode("utf-8"), source="seed.prototxt")
        return fuzz_targets.target_weights_on_graph(data, graph)
    return {
        "prototxt": fuzz_targets.target_prototxt_text,
        "caffemodel": fuzz_targets.target_caffemodel,
        "model_file": fuzz_targets.target_model_file,
        "convert_and_run": fuzz_targets.target_convert_and_run,
    }[target](data)


def test_every_listed_case_exists():
    assert set(EXPECTED) <= set(CASES), sorted(set(EXPECTED) - set(CASES))


@pytest.mark.parametrize("case", CASES)
def test_corpus_case_keeps_its_outcome(case):
    refused = _run(Path(case).parent.name, (CORPUS / case).read_bytes())
    if case in EXPECTED:
        assert ("refused" if refused else "read") == EXPECTED[case]
