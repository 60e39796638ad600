"""The tensors of a checkpoint as its authors saved it: inside a training container, with or
without DataParallel's `module.` prefix."""
from __future__ import annotations

from collections.abc import Mapping

import torch

CHECKPOINT_CONTAINERS = ("params_ema", "params", "state_dict", "model_state", "model", "net")
"""Keys under which published checkpoints keep their weights (BasicSR's EMA weights first)."""


def unwrap_state_dict(checkpoint: Mapping[str, object]) -> dict[str, torch.Tensor]:
    """The state dict inside the first of CHECKPOINT_CONTAINERS the checkpoint has (the checkpoint
    itself when it is flat), its keys without a `module.` prefix; entries that are not tensors
    (optimizer state, epoch counters) are dropped."""
    for container in CHECKPOINT_CONTAINERS:
        if isinstance(checkpoint.get(container), Mapping):
            checkpoint = checkpoint[container]
            break
    return {key.removeprefix("module."): value for key, value in checkpoint.items()
            if isinstance(value, torch.Tensor)}
