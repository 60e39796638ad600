"""LaMa's weights from the files users have, built as spandrel's LaMa.

big-lama.pt (Sanster's release, the file comfyui-inpaint-nodes and IOPaint use) is a TorchScript
archive of LaMa's `bin/to_jit.py`: a JITWrapper whose `model` is the predict-only training
module, whose `generator` is the FFC ResNet. Its tensors are therefore named
"model.generator.model.<i>...". spandrel's LaMa names the same generator "model.model.<i>..."
(its LaMa module's `model` is the generator), and itself accepts "generator.model.<i>..." (the
training checkpoint's names). The archive is read by models/torchscript_archives.py, never run;
a .safetensors (or torch.save'd) state dict in any of the three namings is read as well.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Mapping

import safetensors.torch
import torch
from torch import nn

from ..checkpoint_files import read_checkpoint_keys
from ..files import Kind, ModelFile
from ..state_dicts import unwrap_state_dict
from .. import torchscript_archives as torchscript

GENERATOR_PREFIXES = ("model.generator.model.", "generator.model.", "model.model.")
"""Where the generator's Sequential lies: big-lama.pt's TorchScript archive, LaMa's training
checkpoint, spandrel's LaMa module. The first is mapped to the last."""
SPANDREL_PREFIX = "model.model."
MARKER_KEYS = tuple(f"{prefix}1.bn_l.running_mean" for prefix in GENERATOR_PREFIXES)
"""One of these (the first FFC block's batch norm, spandrel's own detection key) is in every LaMa."""

FILE = ModelFile("LaMa inpainting network", Kind.INPAINTER, marker_keys=MARKER_KEYS, any_marker=True)


def _refusal(name: str, reason: str) -> ValueError:
    return ValueError(f"could not read '{name}' as a {FILE.what}: it is {reason}. {FILE.wanted}")


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The tensors of a LaMa file (TorchScript archive, .safetensors, torch.save'd state dict),
    read without running code; a file of another kind, or damaged, is refused naming it."""
    name = os.path.basename(path)
    reading = read_checkpoint_keys(path)  # (TorchScript archives read without running them)
    if reading.problem is not None:
        raise _refusal(name, reading.reason)
    if reading.contents:
        raise ValueError(f"'{name}' is not a checkpoint of the kind expected: it holds {reading.contents}, where a "
                         f"{FILE.what} file holds named tensors. {FILE.wanted}")
    _check_markers(name, reading.keys)
    try:
        if torchscript.is_torchscript(path):
            state_dict = torchscript.read_tensors(path)
        elif path.lower().endswith((".safetensors", ".sft")):
            state_dict = safetensors.torch.load_file(path, device="cpu")
        else:
            content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            state_dict = unwrap_state_dict(content) if isinstance(content, Mapping) else {}
    except (torchscript.NotTorchScript, OSError, RuntimeError, ValueError) as error:
        raise _refusal(name, f"damaged ({type(error).__name__}: {str(error).strip()[:160]})") from error
    return state_dict


def _check_markers(name: str, keys) -> None:
    if FILE.missing_markers(keys):
        found = ", ".join(sorted(keys)[:4])
        raise ValueError(f"'{name}' is not a {FILE.what}: it is another kind of network (it has none of "
                         f"{', '.join(MARKER_KEYS)}; found {found}, ...). {FILE.wanted}")


def spandrel_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator's tensors under spandrel's names ("model.model.<i>..."); tensors outside the
    generator (none in big-lama.pt; a training checkpoint's discriminator or losses) are left out."""
    mapped, left_out = {}, []
    for key, value in state_dict.items():
        prefix = next((prefix for prefix in GENERATOR_PREFIXES if key.startswith(prefix)), None)
        if prefix is None:
            left_out.append(key)
        else:
            mapped[SPANDREL_PREFIX + key[len(prefix):]] = value
    if left_out:
        logging.info("SSDiff LaMa: %d tensors outside the generator left out (%s, ...)", len(left_out), left_out[0])
    return mapped


def build(state_dict: Mapping[str, torch.Tensor]) -> nn.Module:
    """spandrel's LaMa with these weights (strictly: every tensor of the generator, nothing else),
    float32, in eval mode on the CPU: forward(image B x 3 x H x W, mask B x 1 x H x W) in [0, 1],
    H and W multiples of 8."""
    import spandrel

    mapped = spandrel_state_dict(state_dict)
    if not mapped:
        raise ValueError(f"it holds no LaMa generator (no tensor under {', '.join(GENERATOR_PREFIXES)})")
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(mapped)
    except spandrel.UnsupportedModelError as error:
        raise ValueError(f"spandrel does not recognise it as LaMa ({error})") from error
    if descriptor.architecture.id != "LaMa":
        raise ValueError(f"it is a {descriptor.architecture.name} model, not LaMa")
    return descriptor.model.float().eval().requires_grad_(False)


def load(path: str) -> nn.Module:
    """read_state_dict and build; a file the builder refuses is named in the error."""
    name = os.path.basename(path)
    state_dict = read_state_dict(path)
    try:
        return build(state_dict)
    except (ValueError, RuntimeError, KeyError) as error:
        reason = str(error).strip().rstrip(".")
        raise ValueError(f"'{name}' is not a usable {FILE.what}: {reason}. {FILE.wanted}") from error
