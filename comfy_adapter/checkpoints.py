"""Model files through ComfyUI: the pack's folders registered beside the user's, a file name
resolved in a kind's folders, and checkpoints read without running pickled code."""
from __future__ import annotations

import functools
import itertools
import os
import tempfile
from collections.abc import Mapping
from typing import Callable, TypeVar

import safetensors
import safetensors.torch
import torch

import comfy.utils
import folder_paths

from ..models.files import MODEL_FOLDERS, ModelFile, catalogue_file
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
    in its folders that could be one (not a catalogue file of another kind, and holding the kind's
    marker keys), so a renamed file is still offered."""
    present = {name: folder for folder in reversed(kind.folders) for name in folder_paths.get_filename_list(folder)}
    known = [entry.name for entry in kind.files if entry.name in present]
    others = sorted(name for name, folder in present.items()
                    if name not in known and _could_be(kind, folder, name))
    return known + others


def _could_be(kind: ModelFile, folder: str, name: str) -> bool:
    entry = catalogue_file(os.path.basename(name))
    if entry is not None:
        return entry.kind == kind.kind
    if not kind.marker_keys:
        return True
    keys = checkpoint_keys(folder_paths.get_full_path(folder, name))
    return keys is None or not kind.missing_markers(keys)


def checkpoint_keys(path: str) -> frozenset[str] | None:
    """The tensor names a checkpoint holds (unwrapped as the loaders unwrap them), read without its
    tensors' data; None when it cannot be read that way (the loader then says why)."""
    stat = os.stat(path)
    return _checkpoint_keys(path, stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _checkpoint_keys(path: str, size: int, modified: int) -> frozenset[str] | None:
    try:
        if path.endswith((".safetensors", ".sft")):
            with safetensors.safe_open(path, framework="pt") as handle:
                return frozenset(key.removeprefix("module.") for key in handle.keys())
        content = torch.load(path, map_location="meta", weights_only=True)
    except Exception:
        return None
    return frozenset(unwrap_state_dict(content)) if isinstance(content, Mapping) else None


class CheckpointError(ValueError):
    """A model file that is missing or is not what the loader expects."""


def model_path(kind: ModelFile, name: str) -> str:
    """The full path of `name` in the kind's folders; refuses names that leave them."""
    if os.path.isabs(name) or ".." in name.replace("\\", "/").split("/"):
        raise CheckpointError(f"{kind.what} name '{name}' must be a file inside "
                              f"models/{kind.folders[0]}, not a path out of it")
    for folder in kind.folders:
        path = folder_paths.get_full_path(folder, name)
        if path is not None:
            return path
    folders = ", ".join(path for folder in kind.folders for path in folder_paths.get_folder_paths(folder))
    raise CheckpointError(f"{kind.what} '{name}' not found in {folders}. Put {kind.expected} there; "
                          f"get it from {kind.source}")


def _container_error(kind: ModelFile, path: str, content: object) -> CheckpointError:
    return CheckpointError(f"'{os.path.basename(path)}' is not a checkpoint of the kind expected: it holds "
                           f"{content}, where a {kind.what} file holds a dict of named tensors. Expected "
                           f"{kind.expected} from {kind.source}")


def _unreadable(kind: ModelFile, path: str, error: Exception) -> CheckpointError:
    """Why ComfyUI's reader failed: a file that loads as tensors but is no dict of them (a list, a
    bare tensor, a number), or one that is damaged or needs code to load."""
    try:
        content = torch.load(path, map_location="meta", weights_only=True)
    except Exception:
        return CheckpointError(f"could not read '{path}' as a {kind.what}: it is damaged, not a checkpoint, "
                               f"or needs code to load (refused: only tensors are read; {type(error).__name__}). "
                               f"Expected {kind.expected} from {kind.source}")
    return _container_error(kind, path, f"a {type(content).__name__}")


def read_state_dict(kind: ModelFile, path: str) -> dict[str, torch.Tensor]:
    """Reads a checkpoint without running pickled code, unwraps it (unwrap_state_dict) and checks
    that it holds tensors and the kind's marker keys."""
    try:
        content = comfy.utils.load_torch_file(path, safe_load=True)
    except Exception as error:
        raise _unreadable(kind, path, error) from error
    if not isinstance(content, Mapping):
        raise _container_error(kind, path, f"a {type(content).__name__}")
    state_dict = unwrap_state_dict(content)
    if not state_dict:
        keys = ", ".join(map(str, list(content)[:4])) or "nothing"
        raise _container_error(kind, path, f"no tensors (its keys: {keys})")
    missing = kind.missing_markers(state_dict)
    if missing:
        found = ", ".join(list(state_dict)[:4])
        raise CheckpointError(f"'{os.path.basename(path)}' is not a {kind.what} (it lacks "
                              f"{' or '.join(missing) if kind.any_marker else ', '.join(missing)}; found {found}, ...). Expected {kind.expected} "
                              f"from {kind.source}")
    return state_dict


Built = TypeVar("Built")


def load_checkpoint(kind: ModelFile, name: str, build: Callable[[dict[str, torch.Tensor]], Built]) -> Built:
    """Reads the file safely and builds its network; a file the builder refuses gets an error
    naming the file, the file expected and where to get it."""
    state_dict = read_state_dict(kind, model_path(kind, name))
    try:
        return build(state_dict)
    except (ValueError, RuntimeError) as error:
        reason = str(error).strip().rstrip(".")  # torch's load_state_dict messages end in ". "
        raise CheckpointError(f"'{name}' is not a usable {kind.what}: {reason}. Expected {kind.expected} "
                              f"from {kind.source}") from error


def save_new_checkpoint(folder: str, prefix: str, state_dict: dict[str, torch.Tensor],
                        metadata: dict[str, str] | None = None) -> str:
    """Writes `state_dict` as `<prefix>_<n>.safetensors` (n the first number free) into the first
    path of models/<folder>, so that the folder's loader lists it. It is written under a temporary
    name and linked into place: it never replaces a file, and nothing half-written is left."""
    if not prefix or os.path.basename(prefix) != prefix or prefix.startswith("."):
        raise CheckpointError(f"save name '{prefix}' must be a plain file name (no folders), e.g. "
                              "'restorer_finetuned'")
    directory = folder_paths.get_folder_paths(folder)[0]
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{prefix}.", suffix=".partial", dir=directory)
    os.close(handle)
    try:
        safetensors.torch.save_file({key: value.detach().contiguous().cpu() for key, value in state_dict.items()},
                                    temporary, metadata)
        for number in itertools.count(1):
            path = os.path.join(directory, f"{prefix}_{number:05d}.safetensors")
            try:
                os.link(temporary, path)
                return path
            except FileExistsError:
                continue
    finally:
        os.unlink(temporary)
