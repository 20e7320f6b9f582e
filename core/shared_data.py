"""Where the shared OpenPose reference files live (official prototxts, sample photos, SPEC).

They are never copied into the repository. The folder is ``$POSEBRIDGE_SHARED`` if set (only
there), else ``../shared`` beside the repository checkout.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_VAR = "POSEBRIDGE_SHARED"

OFFICIAL_PROTOTXTS: dict[str, str] = {
    "coco": "openpose/models/pose/coco/pose_deploy_linevec.prototxt",
    "mpi": "openpose/models/pose/mpi/pose_deploy_linevec.prototxt",
    "mpi_4_stages": "openpose/models/pose/mpi/pose_deploy_linevec_faster_4_stages.prototxt",
    "body_25": "openpose/models/pose/body_25/pose_deploy.prototxt",
    "hand": "openpose/models/hand/pose_deploy.prototxt",
    "face": "openpose/models/face/pose_deploy.prototxt",
}
TRAINING_PROTOTXT = "openpose/training/pose_train_test.prototxt"
SAMPLE_IMAGES = ("openpose/images/ski.jpg", "openpose/images/upper.jpg", "openpose/images/upper2.jpg")


def shared_dir() -> Path | None:
    """The shared folder, or None when it is absent."""
    env = os.environ.get(ENV_VAR)
    if env:  # an explicit location replaces the default search (an empty folder hides ../shared)
        candidates = [Path(env)]
    else:
        repo_root = Path(__file__).resolve().parent.parent
        candidates = [repo_root.parent / "shared", Path.cwd().parent / "shared"]
    for candidate in candidates:
        if (candidate / "openpose").is_dir():
            return candidate
    return None


def shared_path(relative: str) -> Path | None:
    """A file inside the shared folder, or None when the folder or the file is absent."""
    root = shared_dir()
    if root is None:
        return None
    path = root / relative
    return path if path.exists() else None
