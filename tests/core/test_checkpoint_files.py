"""What a file in a models folder holds, read without its tensors' data (models/checkpoint_files.py):
every oddity a shared folder can hold is named for what it is, nothing raises, nothing blocks, and
no tensor's bytes are read."""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from comfyui_ssdiff.models.checkpoint_files import FileProblem, read_checkpoint_keys
from damaged_checkpoints import with_storage_claim


class Hostile:
    def __reduce__(self):
        return print, ("ran",)


@pytest.fixture(scope="module")
def odd_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("odd")
    torch.save({"a": torch.zeros(1000), "b": torch.ones(10)}, folder / "zip.pth")
    torch.save({"state_dict": {"module.w": torch.zeros(3)}}, folder / "wrapped.pth")
    torch.save({"x": torch.zeros(3)}, folder / "legacy.pth", _use_new_zipfile_serialization=False)
    shared = torch.zeros(1000)
    torch.save({"x": shared, "view": shared[10:20]}, folder / "legacy_shared.pth", _use_new_zipfile_serialization=False)
    save_file({"a": torch.zeros(1000)}, str(folder / "plain.safetensors"))
    whole = (folder / "zip.pth").read_bytes()
    (folder / "half.pth").write_bytes(whole[: len(whole) // 2])
    whole = (folder / "plain.safetensors").read_bytes()
    (folder / "half.safetensors").write_bytes(whole[: len(whole) // 2])
    (folder / "header_cut.safetensors").write_bytes(whole[:20])
    whole = (folder / "legacy.pth").read_bytes()
    (folder / "legacy_half.pth").write_bytes(whole[: len(whole) - 5])
    (folder / "empty.pth").write_bytes(b"")
    (folder / "notes.pth").write_text("not a model")
    (folder / "garbage.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    os.symlink("/nonexistent-drive/models/x.pth", folder / "offline_drive.pth")
    (folder / "folder.pth").mkdir()
    os.mkfifo(folder / "pipe.pth")
    torch.save({"a": torch.zeros(1000)}, folder / "one.pth")
    with_storage_claim(folder / "one.pth", folder / "claims_a_terabyte.pth", 10**12)
    with_storage_claim(folder / "zip.pth", folder / "claims_a_terabyte_first.pth", 10**12)
    torch.save([torch.zeros(2)], folder / "a_list.pth")
    torch.save({"epoch": 3}, folder / "no_tensors.pth")
    torch.save({"model": Hostile()}, folder / "hostile.pth")
    return folder


@pytest.mark.parametrize("name, keys", [("zip.pth", {"a", "b"}), ("wrapped.pth", {"w"}), ("legacy.pth", {"x"}), ("legacy_shared.pth", {"x", "view"}),
                                        ("plain.safetensors", {"a"})])
def test_checkpoints_give_their_tensor_names(odd_folder, name, keys):
    reading = read_checkpoint_keys(str(odd_folder / name))
    assert reading.problem is None and reading.keys == keys and not reading.contents


@pytest.mark.parametrize("name, problem, words", [
    ("half.pth", FileProblem.TRUNCATED, "zip index"),
    ("half.safetensors", FileProblem.TRUNCATED, "the file has"),
    ("header_cut.safetensors", FileProblem.TRUNCATED, "header alone"),
    ("legacy_half.pth", FileProblem.TRUNCATED, "its tensors need"),
    ("empty.pth", FileProblem.EMPTY, "did not finish"),
    ("notes.pth", FileProblem.NOT_A_CHECKPOINT, "neither a .safetensors"),
    ("garbage.safetensors", FileProblem.DAMAGED, "header is not valid"),
    ("offline_drive.pth", FileProblem.MISSING, "symbolic link whose target does not exist"),
    ("folder.pth", FileProblem.NOT_A_FILE, "a directory"),
    ("pipe.pth", FileProblem.NOT_A_FILE, "a named pipe"),
    ("claims_a_terabyte.pth", FileProblem.DAMAGED, "past the file's end"),
    ("claims_a_terabyte_first.pth", FileProblem.DAMAGED, "past the file's end"),
    ("hostile.pth", FileProblem.NEEDS_CODE, "never runs code"),
    ("vanished.pth", FileProblem.MISSING, "moved or deleted"),
])
def test_every_oddity_is_named_for_what_it_is(odd_folder, name, problem, words):
    reading = read_checkpoint_keys(str(odd_folder / name))
    assert reading.problem is problem and reading.keys is None
    text = reading.describe(name)
    assert text.startswith(f"'{name}' is {problem.value} (") and words in text, text


@pytest.mark.parametrize("name, contents", [("a_list.pth", "a list"), ("no_tensors.pth", "no tensors (its keys: epoch)")])
def test_readable_files_without_named_tensors_say_what_they_hold(odd_folder, name, contents):
    reading = read_checkpoint_keys(str(odd_folder / name))
    assert reading.problem is None and reading.keys is None and reading.contents == contents


def read_bytes_of(function) -> int:
    """Bytes this process read through read(2) while `function` ran (Linux's rchar)."""
    def rchar() -> int:
        return int(next(line for line in Path("/proc/self/io").read_text().splitlines()
                        if line.startswith("rchar")).split()[1])
    before = rchar()
    function()
    return rchar() - before


def test_names_of_large_checkpoints_are_read_without_their_tensor_data(tmp_path):
    torch.save({f"w{index}": torch.zeros(1 << 20) for index in range(16)}, tmp_path / "big.pth")
    torch.save({f"w{index}": torch.zeros(1 << 20) for index in range(16)}, tmp_path / "big_legacy.pth",
               _use_new_zipfile_serialization=False)
    save_file({f"w{index}": torch.zeros(1 << 20) for index in range(16)}, str(tmp_path / "big.safetensors"))
    for name in ("big.pth", "big_legacy.pth", "big.safetensors"):
        size = (tmp_path / name).stat().st_size
        assert size > 60 << 20
        read = read_bytes_of(lambda: read_checkpoint_keys(str(tmp_path / name)))
        assert read < size / 100, f"{name}: read {read} of {size} bytes"
        assert len(read_checkpoint_keys(str(tmp_path / name)).keys) == 16


@pytest.mark.skipif(not hasattr(os, "fork") or os.geteuid() != 0, reason="needs root to drop to another user")
def test_a_file_without_read_permission_is_named_unreadable():
    """Root reads any file, so the reading runs in a forked child that is `nobody`."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    locked = folder / "locked.pth"
    torch.save({"a": torch.zeros(3)}, locked)
    locked.chmod(0)
    read_end, write_end = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover (the child)
        try:
            os.close(read_end)
            os.setgid(65534)
            os.setuid(65534)
            os.write(write_end, read_checkpoint_keys(str(locked)).describe("locked.pth").encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        text = pipe.read().decode()
    os.waitpid(child, 0)
    locked.chmod(stat.S_IRUSR | stat.S_IWUSR)
    locked.unlink()
    folder.rmdir()
    assert text.startswith("'locked.pth' is unreadable (Permission denied; check its permissions"), text
