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


PRECISIONS: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def precision_input(supported: tuple[str, ...], why: str) -> io.Input:
    """An optional `precision` combo (last on a loader, so saved workflows keep their values): the
    dtype the network's weights are cast to. Every precision is listed; those the network does not
    support are refused (`why` says why) before the run."""
    return io.Combo.Input("precision", options=list(PRECISIONS), default="fp32", optional=True,
                          tooltip=f"the weights' precision: {' or '.join(supported)} ({why}); bf16 halves the "
                                  "weights' memory")


def precision_refusal(precision: str | None, supported: tuple[str, ...], what: str, why: str) -> str | None:
    """Why `precision` cannot be used for `what`, or None (None given: the default, fp32)."""
    if precision is None or precision in supported:
        return None
    if precision not in PRECISIONS:
        return f"precision must be one of {', '.join(PRECISIONS)}, got '{precision}'"
    return f"precision {precision}: {what} runs in {' or '.join(supported)} only ({why}); choose one of those"


def in_precision(network: torch.nn.Module, precision: str, supported: tuple[str, ...], what: str,
                 why: str) -> torch.nn.Module:
    """The network cast to `precision`, or a ValueError naming what it supports."""
    refusal = precision_refusal(precision, supported, what, why)
    if refusal is not None:
        raise ValueError(refusal)
    return network.to(PRECISIONS[precision])
