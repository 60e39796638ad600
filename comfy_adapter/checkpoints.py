"""Model files through ComfyUI: the pack's folders registered beside the user's, a file name
resolved in a kind's folders, and checkpoints read without running pickled code."""
from __future__ import annotations

import functools
import itertools
import logging
import os
import tempfile
from collections.abc import Mapping
from typing import Callable, TypeVar

import safetensors.torch
import torch

import comfy.utils
import folder_paths

from ..models.checkpoint_files import FileReading, read_checkpoint_keys
from ..models.files import MODEL_FOLDERS, ModelFile, catalogue_file, umask_mode
from ..models.state_dicts import unwrap_state_dict


def register_model_folders() -> None:
    """Adds models/<folder> for each of MODEL_FOLDERS, keeping any paths already registered (by
    extra_model_paths.yaml or another pack) and accepting the usual checkpoint extensions."""
    for folder in MODEL_FOLDERS:
        default = os.path.join(folder_paths.models_dir, folder)
        paths = list(folder_paths.folder_names_and_paths.get(folder, ([], set()))[0])
        if default not in paths:
            paths.insert(0, default)
        folder_paths.folder_names_and_paths[folder] = (paths, set(folder_paths.supported_pt_extensions))


def choices(kind: ModelFile) -> list[str]:
    """The files a loader offers: the kind's catalogue files that are there, then every other file
    in its folders that could be one (not a catalogue file of another kind, readable, and holding
    the kind's marker keys), so a renamed file is still offered. Reads no tensor data; whatever a
    folder holds (broken links, pipes, damaged or foreign files) is left out, never raised."""
    present = {name: folder for folder in reversed(kind.folders) for name in _listed(folder)}
    known = [entry.name for entry in kind.files if entry.name in present]
    others = sorted(name for name, folder in present.items()
                    if name not in known and _could_be(kind, folder, name))
    return known + others


def _listed(folder: str) -> list[str]:
    try:
        return folder_paths.get_filename_list(folder)
    except Exception as error:  # a models folder on a drive that went away mid-walk
        logging.warning("SSDiff: could not list models/%s (%s); its files are not offered", folder, error)
        return []


def _could_be(kind: ModelFile, folder: str, name: str) -> bool:
    entry = catalogue_file(name.replace("\\", "/")) or catalogue_file(os.path.basename(name))
    if entry is not None:
        return entry.kind == kind.kind
    reading = inspect_file(listed_path(folder, name))
    if reading.problem is not None or reading.contents:
        return False
    return reading.keys is None or not kind.missing_markers(reading.keys)


def listed_path(folder: str, name: str) -> str:
    """Where a listed name lies: the first of the folder's paths holding an entry of that name (a
    broken link included, which ComfyUI's get_full_path passes over)."""
    paths = folder_paths.get_folder_paths(folder)
    for root in paths:
        path = os.path.join(root, name)
        if os.path.lexists(path):
            return path
    return os.path.join(paths[0], name) if paths else name


def inspect_file(path: str) -> FileReading:
    """read_checkpoint_keys, remembered while the file keeps its size and time; a file with a
    problem is logged once (ComfyUI lists the folders on every /object_info)."""
    try:
        status = os.stat(path)
        identity = (status.st_size, status.st_mtime_ns, status.st_ino)
    except OSError:
        identity = None
    reading = _inspect(path, identity)
    if reading.problem is not None and (path, identity) not in _logged:
        _logged.add((path, identity))
        logging.warning("SSDiff: %s: not offered by the loaders", reading.describe(path))
    return reading


_logged: set[tuple[str, tuple[int, int, int] | None]] = set()


@functools.lru_cache(maxsize=4096)
def _inspect(path: str, identity: tuple[int, int, int] | None) -> FileReading:
    return read_checkpoint_keys(path)


class CheckpointError(ValueError):
    """A model file that is missing or is not what the loader expects."""


def model_path(kind: ModelFile, name: str) -> str:
    """The full path of `name` in the kind's folders; refuses names that leave them, and entries
    that are no file (a broken link, a directory, a pipe), saying which."""
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise CheckpointError(f"{kind.what} name '{name}' must be a file inside "
                              f"models/{kind.folders[0]}, not a path out of it")
    for folder in kind.folders:
        path = folder_paths.get_full_path(folder, name)
        if path is not None:
            return path
    for folder in kind.folders:
        path = listed_path(folder, name)
        if os.path.lexists(path):  # listed, yet no file: a broken link, a directory, a pipe
            reading = read_checkpoint_keys(path)
            if reading.problem is not None:
                raise CheckpointError(f"could not read '{name}' as a {kind.what}: it is {reading.reason}. "
                                      f"{kind.wanted}")
    folders = ", ".join(path for folder in kind.folders for path in folder_paths.get_folder_paths(folder))
    raise CheckpointError(f"{kind.what} '{name}' not found in {folders}. Put {kind.expected} there; {kind.source}")


def _container_error(kind: ModelFile, name: str, content: str) -> CheckpointError:
    return CheckpointError(f"'{name}' is not a checkpoint of the kind expected: it holds {content}, where a "
                           f"{kind.what} file holds a dict of named tensors. {kind.wanted}")


def read_state_dict(kind: ModelFile, path: str) -> dict[str, torch.Tensor]:
    """Reads a checkpoint without running pickled code, unwraps it (unwrap_state_dict) and checks
    that it holds tensors and the kind's marker keys. The file is looked at first without its
    tensors' data, so that a damaged, truncated or foreign file is refused before anything is
    allocated for it."""
    name = os.path.basename(path)
    reading = read_checkpoint_keys(path)
    if reading.problem is not None:
        raise CheckpointError(f"could not read '{name}' as a {kind.what}: it is {reading.reason}. {kind.wanted}")
    if reading.contents:
        raise _container_error(kind, name, reading.contents)
    if reading.keys is not None:
        _check_markers(kind, name, reading.keys)
    try:
        content = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as error:
        raise CheckpointError(f"could not read '{name}' as a {kind.what}: it is damaged "
                              f"({type(error).__name__}: {str(error).strip()[:160]}). {kind.wanted}") from error
    if not isinstance(content, Mapping):
        raise _container_error(kind, name, f"a {type(content).__name__}")
    state_dict = unwrap_state_dict(content)
    if not state_dict:
        keys = ", ".join(map(str, list(content)[:4])) or "nothing"
        raise _container_error(kind, name, f"no tensors (its keys: {keys})")
    _check_markers(kind, name, state_dict)
    return state_dict


def _check_markers(kind: ModelFile, name: str, keys) -> None:
    missing = kind.missing_markers(keys)
    if missing:
        found = ", ".join(sorted(keys)[:4])
        raise CheckpointError(f"'{name}' is not a {kind.what}: it is another kind of network (it lacks "
                              f"{' or '.join(missing) if kind.any_marker else ', '.join(missing)}; found {found}, "
                              f"...). {kind.wanted}")


Built = TypeVar("Built")


def load_checkpoint(kind: ModelFile, name: str, build: Callable[[dict[str, torch.Tensor]], Built]) -> Built:
    """Reads the file safely and builds its network; a file the builder refuses gets an error
    naming the file, the file expected and where to get it."""
    state_dict = read_state_dict(kind, model_path(kind, name))
    try:
        return build(state_dict)
    except (ValueError, RuntimeError) as error:
        reason = str(error).strip().rstrip(".")  # torch's load_state_dict messages end in ". "
        raise CheckpointError(f"'{name}' is not a usable {kind.what}: {reason}. {kind.wanted}") from error


def check_save_name(prefix: str) -> None:
    """A save name is a plain file name: no folders, not hidden."""
    if not prefix or os.path.basename(prefix) != prefix or prefix.startswith("."):
        raise CheckpointError(f"save name '{prefix}' must be a plain file name (no folders), e.g. "
                              "'restorer_finetuned'")


def save_new_checkpoint(folder: str, prefix: str, state_dict: dict[str, torch.Tensor],
                        metadata: dict[str, str] | None = None) -> str:
    """Writes `state_dict` as `<prefix>_<n>.safetensors` (n the first number free) into the first
    path of models/<folder>, so that the folder's loader lists it. It is written under a temporary
    name and linked into place: it never replaces a file, and nothing half-written is left; it gets
    the mode any file written there gets (the umask's)."""
    check_save_name(prefix)
    directory = folder_paths.get_folder_paths(folder)[0]
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{prefix}.", suffix=".partial", dir=directory)
    os.close(handle)
    try:
        safetensors.torch.save_file({key: value.detach().contiguous().cpu() for key, value in state_dict.items()},
                                    temporary, metadata)
        os.chmod(temporary, umask_mode())  # after writing: the file safetensors leaves keeps no mode of ours
        for number in itertools.count(1):
            path = os.path.join(directory, f"{prefix}_{number:05d}.safetensors")
            try:
                os.link(temporary, path)
                return path
            except FileExistsError:
                continue
    finally:
        os.unlink(temporary)
