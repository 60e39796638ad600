"""The tensors of a TorchScript archive (what torch.jit.save writes), read without running it.

torch.jit.load would compile the archive's code/ folder and run it. Here only two things are read
from the zip: `<archive>/data.pkl`, the pickled module tree (each module an object of a
`__torch__.<class>` whose state maps attribute names to submodules, tensors and plain values),
and the tensors' bytes in `<archive>/data/<key>`. The pickle is read by a restricted unpickler
that knows six callables, all its own: module objects become plain attribute holders, tensors
are rebuilt from the archive's bytes (`torch._utils._rebuild_tensor_v2` as torch writes it),
ordered dicts and TorchScript's typed lists become the plain Python containers. Any other global
refuses the file. `constants.pkl` (tensors the code uses, not weights) and `code/` are never read.
Nothing from the file is executed.

A tensor's name is its path through the module tree, as `ScriptModule.state_dict()` names it:
"model.generator.model.1.ffc.convl2l.weight".
"""
from __future__ import annotations

import collections
import os
import pickle
import zipfile
from dataclasses import dataclass

import torch

from .checkpoint_files import FileProblem, FileReading

STORAGE_DTYPES = {
    "FloatStorage": torch.float32, "DoubleStorage": torch.float64, "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16, "LongStorage": torch.int64, "IntStorage": torch.int32,
    "ShortStorage": torch.int16, "CharStorage": torch.int8, "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool, "ComplexFloatStorage": torch.complex64, "ComplexDoubleStorage": torch.complex128,
}
MAX_DEPTH = 64
"""Deepest module nesting followed (big-lama's is 8)."""


class NotTorchScript(ValueError):
    """The file is no TorchScript archive (or one this reader cannot read); `problem` says how."""

    def __init__(self, problem: FileProblem, detail: str):
        super().__init__(detail)
        self.problem, self.detail = problem, detail


def archive_folder(names: list[str]) -> str | None:
    """The top folder of a TorchScript archive ("big-lama/") from its zip's names: the one that
    holds data.pkl beside constants.pkl (torch.save's zips hold no constants.pkl); None if none."""
    folders = {name[:-len("data.pkl")] for name in names if name.endswith("/data.pkl") and name.count("/") == 1}
    for folder in sorted(folders):
        if f"{folder}constants.pkl" in names:
            return folder
    return None


def is_torchscript(path: str) -> bool:
    """Whether the file is a zip laid out as torch.jit.save writes (never raises)."""
    try:
        with zipfile.ZipFile(path) as archive:
            return archive_folder(archive.namelist()) is not None
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


class _ScriptObject:
    """A `__torch__` object of the archive: its class's name, and the state its pickle gave it."""
    qualified_name = ""

    def __setstate__(self, state) -> None:
        self.state = state


@dataclass(frozen=True)
class _StorageType:
    dtype: torch.dtype


def _plain_list(values, *_):
    return list(values)


def _untagged(value, *_):
    return value


class _Unpickler(pickle.Unpickler):
    """data.pkl's reader: tensors are built from the archive's records (`with_data`) or as meta
    tensors of the right dtype, shape and strides (names only)."""

    def __init__(self, file, archive: zipfile.ZipFile, folder: str, with_data: bool):
        super().__init__(file)
        self.archive, self.folder, self.with_data = archive, folder, with_data
        self.storages: dict[str, torch.Tensor] = {}
        self.classes: dict[str, type] = {}

    def find_class(self, module: str, name: str):
        if module == "__torch__" or module.startswith("__torch__."):
            qualified = f"{module}.{name}"
            if qualified not in self.classes:  # a plain holder, named after the archive's class
                self.classes[qualified] = type("ScriptObject", (_ScriptObject,), {"qualified_name": qualified})
            return self.classes[qualified]
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return self._rebuild_tensor
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(STORAGE_DTYPES[name])
        if module == "torch.jit._pickle" and name in ("build_intlist", "build_doublelist", "build_boollist",
                                                      "build_tensorlist"):
            return _plain_list
        if (module, name) == ("torch.jit._pickle", "restore_type_tag"):
            return _untagged
        raise pickle.UnpicklingError(f"it names {module}.{name}, which a module's weights never need")

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage" and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            raise pickle.UnpicklingError(f"an unknown record reference {str(pid)[:80]}")
        _, storage_type, key, _, numel = pid
        if key not in self.storages:
            self.storages[key] = self._storage(key, storage_type.dtype, numel)
        return self.storages[key]

    def _storage(self, key: str, dtype: torch.dtype, numel: int) -> torch.Tensor:
        """The record's elements as a flat tensor (a meta one without data); its size must match."""
        name = f"{self.folder}data/{key}"
        try:
            info = self.archive.getinfo(name)
        except KeyError:
            raise NotTorchScript(FileProblem.DAMAGED, f"its tensor record {name} is missing") from None
        itemsize = torch.empty((), dtype=dtype).element_size()
        if info.file_size != numel * itemsize:
            raise NotTorchScript(FileProblem.DAMAGED, f"its tensor record {name} holds {info.file_size:,} bytes "
                                                      f"where its index says {numel * itemsize:,}")
        if not self.with_data:
            return torch.empty(numel, dtype=dtype, device="meta")
        buffer = bytearray(info.file_size)
        with self.archive.open(info) as record:  # zipfile checks the record's CRC as it reads
            if record.readinto(buffer) != info.file_size:
                raise NotTorchScript(FileProblem.TRUNCATED, f"its tensor record {name} ends early")
        return torch.frombuffer(buffer, dtype=dtype) if buffer else torch.empty(0, dtype=dtype)

    @staticmethod
    def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, hooks=None, metadata=None):
        if not isinstance(storage, torch.Tensor):
            raise pickle.UnpicklingError("a tensor without a record")
        size, stride = tuple(size), tuple(stride)
        if len(size) != len(stride) or offset < 0 or any(s < 0 for s in size + stride):
            raise pickle.UnpicklingError(f"a tensor of size {size} and stride {stride}")
        end = offset + sum((s - 1) * t for s, t in zip(size, stride)) + 1 if all(size) else 0
        if end > storage.numel():
            raise pickle.UnpicklingError(f"a tensor reaching past its record ({end:,} > {storage.numel():,} elements)")
        return storage.as_strided(size, stride, offset)


def _named_tensors(root: object) -> dict[str, torch.Tensor]:
    """Every tensor in the module tree, named by its path of attribute names."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[int] = set()

    def walk(node: _ScriptObject, prefix: str, depth: int) -> None:
        if id(node) in seen or depth > MAX_DEPTH:
            return
        seen.add(id(node))
        state = getattr(node, "state", None)
        if not isinstance(state, dict):
            return
        for name, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{prefix}{name}"] = value
            elif isinstance(value, _ScriptObject):
                walk(value, f"{prefix}{name}.", depth + 1)

    if not isinstance(root, _ScriptObject):
        raise NotTorchScript(FileProblem.NOT_A_CHECKPOINT, f"its data.pkl holds a {type(root).__name__}, not a module")
    walk(root, "", 0)
    return tensors


def _read(path: str, with_data: bool) -> dict[str, torch.Tensor]:
    try:
        with zipfile.ZipFile(path) as archive:
            folder = archive_folder(archive.namelist())
            if folder is None:
                raise NotTorchScript(FileProblem.NOT_A_CHECKPOINT, "a zip archive without TorchScript's data.pkl "
                                                                   "and constants.pkl")
            names = set(archive.namelist())
            if f"{folder}byteorder" in names and archive.read(f"{folder}byteorder").strip() not in (b"", b"little"):
                raise NotTorchScript(FileProblem.NOT_A_CHECKPOINT, "a big-endian TorchScript archive")
            with archive.open(f"{folder}data.pkl") as data:
                root = _Unpickler(data, archive, folder, with_data).load()
            return _named_tensors(root)
    except NotTorchScript:
        raise
    except zipfile.BadZipFile as error:
        raise NotTorchScript(FileProblem.TRUNCATED if "CRC" not in str(error) else FileProblem.DAMAGED,
                             f"its zip archive: {error}"[:160]) from error
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            RuntimeError) as error:
        raise NotTorchScript(FileProblem.DAMAGED, f"its data.pkl: {type(error).__name__}: {error}"[:160]) from error


def read_keys(path: str) -> FileReading:
    """The tensor names of a TorchScript archive, read without the tensors' data (each record's
    size is checked against its index), or what is wrong with it. Other files: FileReading with
    problem NOT_A_CHECKPOINT."""
    if not os.path.isfile(path):
        return FileReading(problem=FileProblem.MISSING if not os.path.exists(path) else FileProblem.NOT_A_FILE)
    try:
        tensors = _read(path, with_data=False)
    except NotTorchScript as error:
        return FileReading(problem=error.problem, detail=error.detail)
    except OSError as error:
        return FileReading(problem=FileProblem.UNREADABLE, detail=error.strerror or type(error).__name__)
    if not tensors:
        return FileReading(contents="a TorchScript module without tensors")
    return FileReading(keys=frozenset(tensors))


def read_tensors(path: str) -> dict[str, torch.Tensor]:
    """The named tensors of a TorchScript archive, on the CPU (raises NotTorchScript, OSError)."""
    return _read(path, with_data=True)
