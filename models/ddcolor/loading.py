"""DDColor's weights from the files users have (piddnad/DDColor-models' .pth files, a
{"params": state dict} as BasicSR saves it, or a bare state dict; .safetensors as well), built
as spandrel_extra_arches' DDColor.

The network's size is not in the weights: DDColor's constructor runs one test image through the
encoder only to learn its features' channels (ddcolor/model.py, DDColor.__init__), and spandrel
builds every file at 256 px. The size is the one inference is run at: 512 px for the released
files (upstream's scripts/infer.py `--input_size` default, and the `input_size` of the config.json
of each released model on Hugging Face, piddnad/ddcolor_paper, ..._tiny), any multiple of 32
otherwise. `build` records it on the network (`network.input_size`, what spandrel's own call
resizes to), where `input_size_of` reads it back.
"""
from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from ..files import Kind, ModelFile

ARCHITECTURE = "DDColor"
"""spandrel's architecture id."""
MARKER_KEYS = ("encoder.arch.downsample_layers.0.0.weight", "encoder.arch.norm.weight", "refine_net.0.0.weight_orig")
"""In every DDColor (any ConvNeXt encoder, either colour decoder): the encoder's stem and last
norm, and the spectrally normalised refinement conv; all three among spandrel's detection keys."""

FILE = ModelFile("DDColor colourisation network", Kind.COLOURISER, marker_keys=MARKER_KEYS)

DEFAULT_INPUT_SIZE = 512
"""The side the released files are run at (see the module's description)."""
INPUT_MULTIPLE = 32
"""ConvNeXt halves the image five times (4, 2, 2, 2) and the decoder concatenates its upsampled
features with the encoder's: a side that is not a multiple of 32 does not fit."""
MIN_INPUT_SIZE = 64
"""At 32 px the encoder's last feature map is 1 x 1."""
MAX_INPUT_SIZE = 2048

_PURPOSES = {"SR": "upscaler", "FaceSR": "face restorer", "Inpainting": "inpainting network",
             "Restoration": "restoration network"}


def check_input_size(input_size: int) -> int:
    """The side the network runs at, as an int; refuses one DDColor cannot take."""
    if isinstance(input_size, bool) or not isinstance(input_size, int) or input_size % INPUT_MULTIPLE \
            or not MIN_INPUT_SIZE <= input_size <= MAX_INPUT_SIZE:
        raise ValueError(f"DDColor's input size must be a multiple of {INPUT_MULTIPLE} from {MIN_INPUT_SIZE} to "
                         f"{MAX_INPUT_SIZE} px, got {input_size!r} (the released files are run at "
                         f"{DEFAULT_INPUT_SIZE})")
    return input_size


def input_size_of(network: nn.Module) -> int:
    """The side `build` recorded on the network (spandrel's own default, 256, on a network built
    elsewhere)."""
    size = getattr(network, "input_size", None)
    if size is None:
        raise ValueError("not a DDColor network: it has no input_size")
    height, width = (size, size) if isinstance(size, int) else tuple(size)
    if height != width:
        raise ValueError(f"the network is set to run at {width} x {height} px; DDColor runs on a square")
    return int(height)


def describe(descriptor) -> str:
    """What spandrel found, in words: "a LaMa inpainting network", "an ESRGAN upscaler"."""
    name = descriptor.architecture.name
    what = _PURPOSES.get(descriptor.purpose, "network")
    return f"{'an' if name[:1].upper() in 'AEIOU' else 'a'} {name} {what}"


def _spandrel_loader():
    import spandrel

    try:
        import spandrel_extra_arches
    except ImportError as error:
        raise ValueError("DDColor's architecture ships in spandrel_extra_arches, which is not installed "
                         "(`pip install spandrel_extra_arches`)") from error
    spandrel_extra_arches.install(ignore_duplicates=True)
    return spandrel


def build(state_dict: Mapping[str, torch.Tensor], input_size: int = DEFAULT_INPUT_SIZE) -> nn.Module:
    """spandrel's DDColor with these weights (strictly: every tensor it has, no other besides the
    ConvNeXt classifier head the released files may carry), float32, in eval mode on the CPU, set
    to run at `input_size` px: forward(gray RGB 1 x 3 x S x S in [0, 1]) -> CIELAB a*, b* 1 x 2 x S x S.
    Weights spandrel recognises as another architecture, or not at all, are refused naming what they are."""
    input_size = check_input_size(input_size)
    spandrel = _spandrel_loader()
    try:
        descriptor = spandrel.ModelLoader().load_from_state_dict(dict(state_dict))  # (spandrel pops keys)
    except spandrel.UnsupportedModelError as error:
        keys = ", ".join(sorted(state_dict)[:3])
        raise ValueError(f"it is not a DDColor network: spandrel recognises no architecture in it (its tensors: "
                         f"{keys}, ...)") from error
    except (KeyError, RuntimeError, ValueError) as error:
        raise ValueError(f"spandrel could not build it ({type(error).__name__}: {str(error).strip()[:200]})") from error
    if descriptor.architecture.id != ARCHITECTURE:
        raise ValueError(f"it is {describe(descriptor)}, not a DDColor colourisation network")
    network = descriptor.model
    if network.num_output_channels != 2:
        raise ValueError(f"it predicts {network.num_output_channels} channels, where a DDColor colouriser predicts "
                         "the 2 of CIELAB's a* and b*")
    network.input_size = (input_size, input_size)
    return network.float().eval().requires_grad_(False)
