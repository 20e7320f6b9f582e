"""Outputs that cannot be written end in one FileAccessError naming the file, exit code 2 and no leftovers."""

from __future__ import annotations

import errno
import os

import pytest

from helpers_nets import TINY_OPENPOSE, write_net
from posebridge.atomic import atomic_path, write_bytes_atomic
from posebridge.errors import FileAccessError
from posebridge.tools.cli import main


def test_a_folder_that_cannot_be_made_is_named(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(FileAccessError, match=r"a_file/out\.bin: cannot write the file"):
        write_bytes_atomic(blocker / "out.bin", b"data")


def test_a_failing_write_leaves_neither_the_target_nor_a_temporary_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(FileAccessError, match="out.bin: cannot write the file: No space left on device"):
        with atomic_path(target):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    assert list(tmp_path.iterdir()) == []


def test_a_non_os_error_passes_through_unchanged(tmp_path):
    with pytest.raises(ValueError, match="not about files"):
        with atomic_path(tmp_path / "out.bin"):
            raise ValueError("not about files")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("option, name", [("--ncnn", "tiny.param"), ("-o", "tiny.safetensors")])
def test_convert_to_an_unwritable_place_exits_2_without_traceback(tmp_path, capsys, option, name):
    prototxt, caffemodel = write_net(tmp_path, TINY_OPENPOSE, "tiny")
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    assert main(["convert", str(prototxt), str(caffemodel), option, str(blocker / name)]) == 2
    err = capsys.readouterr().err
    assert "cannot write the file" in err and "blocker" in err and "Traceback" not in err
