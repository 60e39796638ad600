"""What a checkpoint file on disk holds, read without its tensors' data: the names of its tensors,
or what is wrong with the file (a broken link, a directory or pipe, unreadable, empty, truncated,
damaged, no checkpoint, pickled code). Loaders list and refuse files with it; it never blocks on a
pipe, never reads a tensor's bytes and never raises for what it finds on disk."""
from __future__ import annotations

import json
import os
import pickle
import pickletools
import stat
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

import safetensors
import torch

from .state_dicts import unwrap_state_dict

SAFETENSORS_SUFFIXES = (".safetensors", ".sft")
ZIP_MAGIC = b"PK\x03\x04"
LEGACY_TORCH_MAGIC = b"\x80\x02\x8a\x0al\xfc\x9cF\xf9 j\xa8P\x19"
"""The pickled magic number that opens torch.save's files from before torch 1.6."""
MAX_SAFETENSORS_HEADER = 100_000_000
"""safetensors' own limit on a header's length."""


class FileProblem(str, Enum):
    """What is wrong with a file, in the words of a refusal: "'x.pth' is <value>"."""
    MISSING = "missing"
    NOT_A_FILE = "not a regular file"
    UNREADABLE = "unreadable"
    EMPTY = "empty (0 bytes)"
    TRUNCATED = "truncated"
    DAMAGED = "damaged"
    NOT_A_CHECKPOINT = "not a checkpoint"
    NEEDS_CODE = "a checkpoint that needs code to load"


ADVICE = {
    FileProblem.MISSING: "a broken link, or a file moved or deleted after the list was made",
    FileProblem.NOT_A_FILE: "only files are read",
    FileProblem.UNREADABLE: "check its permissions, or that the drive it is on is mounted",
    FileProblem.EMPTY: "a copy or download that did not finish?",
    FileProblem.TRUNCATED: "a copy or download that did not finish, or one still being written?",
    FileProblem.DAMAGED: "get the file again",
    FileProblem.NOT_A_CHECKPOINT: "neither a .safetensors file nor one torch.save wrote",
    FileProblem.NEEDS_CODE: "its pickle names classes besides tensors; the pack reads tensors only, and never "
                            "runs code from a model file",
}


@dataclass(frozen=True)
class FileReading:
    """The outcome of reading a file's tensor names: `keys` when it holds named tensors (unwrapped
    as the loaders unwrap them), `contents` describing anything else it holds, or `problem`."""
    keys: frozenset[str] | None = None
    problem: FileProblem | None = None
    detail: str = ""
    contents: str = ""
    """For a readable checkpoint without named tensors: what it holds ("a list", "no tensors (its
    keys: epoch)")."""

    @property
    def reason(self) -> str:
        """"truncated (its zip index, written last, is missing; a copy ... not finish?)"."""
        detail = f"{self.detail}; " if self.detail else ""
        return f"{self.problem.value} ({detail}{ADVICE[self.problem]})"

    def describe(self, name: str) -> str:
        """"'x.pth' is truncated (...)": the problem in one clause."""
        return f"'{name}' is {self.reason}"


def read_checkpoint_keys(path: str) -> FileReading:
    """The tensor names of the checkpoint at `path`, read without tensor data (a .safetensors
    header, a torch zip's pickle with its tensors memory-mapped, a pre-1.6 file's pickles), or what
    is wrong with it."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            return FileReading(problem=FileProblem.MISSING, detail="a symbolic link whose target does not exist")
        return FileReading(problem=FileProblem.MISSING)
    except OSError as error:
        return _unreadable(error)
    if not stat.S_ISREG(status.st_mode):
        return FileReading(problem=FileProblem.NOT_A_FILE, detail=_file_type(status.st_mode))
    if status.st_size == 0:
        return FileReading(problem=FileProblem.EMPTY)
    try:
        with open(path, "rb") as handle:
            head = handle.read(len(LEGACY_TORCH_MAGIC))
    except OSError as error:
        return _unreadable(error)
    if path.lower().endswith(SAFETENSORS_SUFFIXES):
        return _safetensors_keys(path, status.st_size)
    if head.startswith(ZIP_MAGIC):
        return _zip_keys(path)
    if head.startswith(LEGACY_TORCH_MAGIC):
        return _torch_keys(path)
    return FileReading(problem=FileProblem.NOT_A_CHECKPOINT, detail=f"it starts with {head[:4]!r}")


def _unreadable(error: OSError) -> FileReading:
    return FileReading(problem=FileProblem.UNREADABLE, detail=error.strerror or type(error).__name__)


def _file_type(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device")):
        if test(mode):
            return name
    return "not a regular file"


def _safetensors_keys(path: str, size: int) -> FileReading:
    """The header of a .safetensors file (8 bytes of little-endian length, then JSON naming each
    tensor's dtype, shape and byte range): a file shorter than its header says is truncated; the
    rest of the checks are safetensors' own."""
    try:
        with open(path, "rb") as handle:
            length = int.from_bytes(handle.read(8), "little")
            header = handle.read(min(length, MAX_SAFETENSORS_HEADER)) if 8 + length <= size else b""
    except OSError as error:
        return _unreadable(error)
    if length > MAX_SAFETENSORS_HEADER:
        return FileReading(problem=FileProblem.DAMAGED, detail=f"its header claims {length:,} bytes")
    if 8 + length > size:
        return FileReading(problem=FileProblem.TRUNCATED, detail=f"its header alone needs {8 + length:,} bytes; "
                                                                 f"the file has {size:,}")
    try:
        entries = json.loads(header)
        end = max((entry["data_offsets"][1] for key, entry in entries.items() if key != "__metadata__"),
                  default=0)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        return FileReading(problem=FileProblem.DAMAGED, detail=f"its header is not valid ({type(error).__name__})")
    if 8 + length + end > size:
        return FileReading(problem=FileProblem.TRUNCATED,
                           detail=f"its header lists {8 + length + end:,} bytes; the file has {size:,}")
    try:
        with safetensors.safe_open(path, framework="pt") as handle:
            keys = list(handle.keys())
    except Exception as error:  # safetensors reports every header fault as one error type
        return FileReading(problem=FileProblem.DAMAGED, detail=f"safetensors: {str(error).strip()[:160]}")
    return FileReading(keys=frozenset(key.removeprefix("module.") for key in keys))


def _zip_keys(path: str) -> FileReading:
    """torch.save's zip format: the archive's index must be there (a file cut short loses it, as
    the index comes last), then its pickle (_torch_keys, memory-mapped: each tensor's bytes must
    lie inside the file). A TorchScript archive (torch.jit.save, e.g. big-lama.pt) is read by
    models.torchscript_archives, without running it."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except zipfile.BadZipFile:
        return FileReading(problem=FileProblem.TRUNCATED, detail="its zip index, written last, is missing")
    except OSError as error:
        return _unreadable(error)
    if not any(name.endswith("data.pkl") for name in names):
        return FileReading(problem=FileProblem.NOT_A_CHECKPOINT, detail="a zip archive without torch's data.pkl")
    from . import torchscript_archives  # (it builds on this module's FileReading)

    if torchscript_archives.archive_folder(names) is not None:  # torch.jit.save's layout: read, never run
        return torchscript_archives.read_keys(path)
    return _torch_keys(path, mapped=True)


def _torch_keys(path: str, mapped: bool = False) -> FileReading:
    """torch.load with weights only. A zip file is memory-mapped, so that no tensor's bytes are
    read yet each tensor must lie inside the file (a damaged size is refused here, never
    allocated). A pre-1.6 file is read up to its tensors (torch's skip_data), which then must fit
    in the rest of the file."""
    try:
        if mapped:
            content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        else:
            with torch.serialization.skip_data():  # storages allocated, left unread and untouched
                content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        return _torch_load_problem(error)
    if not mapped:
        problem = _legacy_data_past_the_end(path, content)
        if problem is not None:
            return problem
    if not isinstance(content, Mapping):
        return FileReading(contents=f"a {type(content).__name__}")
    keys = frozenset(unwrap_state_dict(content))
    if not keys:
        return FileReading(contents=f"no tensors (its keys: {', '.join(map(str, list(content)[:4])) or 'nothing'})")
    return FileReading(keys=keys)


def _legacy_data_past_the_end(path: str, content: object) -> FileReading | None:
    """A pre-1.6 file keeps its storages after five pickles (magic number, protocol, system info,
    the object, the storage keys), each as an 8-byte count and its bytes: they must fit in the
    file. The pickles are walked opcode by opcode (pickletools), never run."""
    storages = {}
    for tensor in _tensors(content):
        storage = tensor.untyped_storage()
        storages[storage.data_ptr()] = storage.nbytes()
    try:
        with open(path, "rb") as handle:
            for _ in range(5):
                for _ in pickletools.genops(handle):
                    pass
            start = handle.tell()
    except (OSError, ValueError) as error:
        return FileReading(problem=FileProblem.DAMAGED, detail=f"its pickles: {error}"[:160])
    size, needed = os.path.getsize(path), start + sum(8 + nbytes for nbytes in storages.values())
    if needed > size:
        return FileReading(problem=FileProblem.TRUNCATED,
                           detail=f"its tensors need {needed:,} bytes; the file has {size:,}")
    return None


def _tensors(content: object, depth: int = 0):
    if isinstance(content, torch.Tensor):
        yield content
    elif depth < 4 and isinstance(content, (Mapping, list, tuple)):
        for value in content.values() if isinstance(content, Mapping) else content:
            yield from _tensors(value, depth + 1)


def _torch_load_problem(error: Exception) -> FileReading:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if isinstance(error, pickle.UnpicklingError) and "Weights only load failed" in str(error):
        return FileReading(problem=FileProblem.NEEDS_CODE)
    if isinstance(error, EOFError) or "EOF" in message or "truncated" in message.lower():
        return FileReading(problem=FileProblem.TRUNCATED, detail=message[:160])
    if isinstance(error, OSError) and not isinstance(error, EOFError):
        return FileReading(problem=FileProblem.UNREADABLE, detail=error.strerror or message[:160])
    if "resize storage" in message:  # a memory-mapped tensor reaching past the file's end
        return FileReading(problem=FileProblem.DAMAGED, detail="a tensor's bytes would lie past the file's end")
    return FileReading(problem=FileProblem.DAMAGED,
                       detail=f"torch's reader stopped at {type(error).__name__}: {message[:100]}")

