"""The checkpoint combo every loader node shares: choices from the kind's folders, and a refusal
at validation time that names the file, the folders and where to get it."""
from __future__ import annotations

from typing import Callable, TypeVar

import torch
from comfy_api.latest import io

from ..ssdiff_core import host


Built = TypeVar("Built")


def load_checkpoint(kind: host.ModelFile, name: str, build: Callable[[dict[str, torch.Tensor]], Built],
                    marker_keys: tuple[str, ...] = ()) -> Built:
    """Reads the file safely and builds its network; a file the builder refuses gets an error
    naming the file expected and where to get it."""
    state_dict = host.read_state_dict(kind, host.model_path(kind, name), marker_keys)
    try:
        return build(state_dict)
    except (ValueError, RuntimeError) as error:
        raise host.CheckpointError(f"'{name}' is not a usable {kind.what}: {error}. Expected {kind.expected} "
                                   f"from {kind.source}") from error


def checkpoint_input(kind: host.ModelFile, name: str = "model_name") -> io.Input:
    return io.Combo.Input(name, options=kind.choices(),
                          tooltip=f"{kind.expected} in models/{' or models/'.join(kind.folders)}; from {kind.source}")


def validate_checkpoint(kind: host.ModelFile, name: str) -> bool | str:
    try:
        host.model_path(kind, name)
    except host.CheckpointError as error:
        return str(error)
    return True
