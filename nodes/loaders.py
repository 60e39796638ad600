"""One base for the pack's loader nodes: the combo of the files in a kind's folders, a refusal at
validation that names the file, its folders and where to get it, and loading through the
adapter's safe reader."""
from __future__ import annotations

from typing import Callable, ClassVar, TypeVar

import torch
from comfy_api.latest import io

from ..comfy_adapter import checkpoints
from ..models.files import ModelFile

Built = TypeVar("Built")


class CheckpointLoader(io.ComfyNode):
    """A loader node of one kind of file, `FILE`, chosen in a combo named `model_name`."""
    FILE: ClassVar[ModelFile]

    @classmethod
    def checkpoint_input(cls, name: str = "model_name") -> io.Input:
        kind = cls.FILE
        return io.Combo.Input(name, options=checkpoints.choices(kind),
                              tooltip=f"{kind.expected} in models/{' or models/'.join(kind.folders)}; {kind.source}")

    @classmethod
    def validate_checkpoint(cls, name: str | None) -> bool | str:
        """None: the name arrives through a link, and is checked when the node executes."""
        if name is None:
            return True
        try:
            checkpoints.model_path(cls.FILE, name)
        except checkpoints.CheckpointError as error:
            return str(error)
        return True

    @classmethod
    def validate_inputs(cls, model_name: str | None = None) -> bool | str:
        return cls.validate_checkpoint(model_name)

    @classmethod
    def load(cls, name: str, build: Callable[[dict[str, torch.Tensor]], Built]) -> Built:
        return checkpoints.load_checkpoint(cls.FILE, name, build)
