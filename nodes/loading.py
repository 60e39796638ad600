"""The checkpoint combo every loader node shares: choices from the kind's folders, and a refusal
at validation time that names the file, the folders and where to get it. Loading itself is
`host.load_checkpoint`."""
from __future__ import annotations

from comfy_api.latest import io

from ..ssdiff_core import host


def checkpoint_input(kind: host.ModelFile, name: str = "model_name") -> io.Input:
    return io.Combo.Input(name, options=kind.choices(),
                          tooltip=f"{kind.expected} in models/{' or models/'.join(kind.folders)}; from {kind.source}")


def validate_checkpoint(kind: host.ModelFile, name: str) -> bool | str:
    try:
        host.model_path(kind, name)
    except host.CheckpointError as error:
        return str(error)
    return True
