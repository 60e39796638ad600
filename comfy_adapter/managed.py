"""The pack's networks under ComfyUI's model management, as ComfyUI's own upscale-model nodes do
it: a loader registers its network with a ModelPatcher (load device: ComfyUI's compute device;
offload device: where ComfyUI parks models), and the node that runs it asks ComfyUI to load it,
with an estimate of the memory the call needs beside the weights. ComfyUI then frees room for it,
keeps or offloads it, and --cpu, --lowvram, --novram, --gpu-only, *Unload models* and /free apply
to it as to a checkpoint. Loader outputs stay the networks themselves: the patcher rides on the
network, and a copy of the network (for training, or a gradient copy) is not managed."""
from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import TypeVar

import torch
from torch import nn

import comfy.model_management
import comfy.model_patcher

PATCHER_ATTRIBUTE = "_ssdiff_patcher"
Result = TypeVar("Result")


class _PatcherLink:
    """The network's ModelPatcher, held on the network; a deep copy of the network gets None (the
    copy is the caller's, not ComfyUI's), and so does a pickled one."""
    __slots__ = ("patcher",)

    def __init__(self, patcher: comfy.model_patcher.ModelPatcher):
        self.patcher = patcher

    def __deepcopy__(self, memo) -> None:
        return None

    def __reduce__(self):
        return type(None), ()


def managed(network: nn.Module) -> nn.Module:
    """Registers `network` with ComfyUI's model management and parks it on the offload device;
    returns it. ComfyUI holds the patcher weakly: it goes with the network."""
    offload = comfy.model_management.unet_offload_device()
    network.to(offload)
    patcher = comfy.model_patcher.ModelPatcher(network, load_device=comfy.model_management.get_torch_device(),
                                               offload_device=offload)
    setattr(network, PATCHER_ATTRIBUTE, _PatcherLink(patcher))
    return network


def patcher_of(network: nn.Module) -> comfy.model_patcher.ModelPatcher | None:
    """The ModelPatcher `managed` gave the network (the pack may be imported twice, by ComfyUI and
    by the harness: the link is read by its attribute, not its class), or None."""
    return getattr(getattr(network, PATCHER_ATTRIBUTE, None), "patcher", None)


def load(networks: nn.Module | Iterable[nn.Module], memory_required: int = 0) -> None:
    """Asks ComfyUI to load the networks onto its compute device, freeing `memory_required` bytes
    beside them (ComfyUI offloads other models for room); networks not registered are left as
    they are."""
    if isinstance(networks, nn.Module):
        networks = [networks]
    patchers = [patcher for patcher in map(patcher_of, networks) if patcher is not None]
    if patchers:
        comfy.model_management.load_models_gpu(patchers, memory_required=int(memory_required), force_full_load=True)


def image_bytes(image: torch.Tensor, factor: float = 1.0) -> int:
    """Bytes of `image` in fp32 times `factor`: the part of a call's memory that follows the input."""
    return int(image.numel() * 4 * factor)


def smaller_on_out_of_memory(run: Callable[[int], Result], size: int, smallest: int, what: str) -> Result:
    """`run(size)`, and on running out of memory `run` again with `size` halved (ComfyUI's cache
    emptied first), as ComfyUI's upscale node halves its tile, down to `smallest`; then the error
    stays an OutOfMemoryError (ComfyUI unloads its models and adds its tips), naming `what` and
    the size reached. `size` is a chunk or batch of work whose result does not depend on it."""
    while True:
        try:
            return run(size)
        except torch.OutOfMemoryError as error:
            comfy.model_management.soft_empty_cache(True)
            if size // 2 < smallest:
                raise torch.OutOfMemoryError(f"{what} ran out of memory even at {size:,} (halved from the start on "
                                             f"each failure): {error}") from error
            logging.warning("SSDiff: %s ran out of memory at %s; trying %s", what, f"{size:,}", f"{size // 2:,}")
            size //= 2
