"""A small random DDColor of the real architecture (spandrel_extra_arches' classes), saved as the
released files are: the test suite's colouriser.

It is small only where the weights allow: spandrel recognises the four ConvNeXt encoders of
DDColor and no other, so the encoder is the released tiny one's (ConvNeXt-T, as
ddcolor_paper_tiny.pth); the multi-scale colour decoder has 8 queries and 1 layer (the released
files: 100 and 9). About 42 M parameters, a 170 MB file; a 64 px image runs in well under a second
on a CPU.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

TINY_INPUT_SIZE = 64
"""The side the tests run it at (a multiple of 32; the released files run at 512)."""


def tiny_ddcolor(seed: int = 0, num_queries: int = 8, dec_layers: int = 1, colour: float = 12.0) -> nn.Module:
    """DDColor (ConvNeXt-T, multi-scale decoder, a*, b* out, spectral norms as the released files)
    with random weights, in eval mode. Its batch-norm statistics are those of random gray images,
    as trained statistics would be (left at 0 and 1 the random decoder's features, and so its
    colours, run to 1e12); `colour` scales the colour embeddings so that a*, b* spread over tens
    of units, as real colours do."""
    from spandrel_extra_arches.architectures.DDColor import DDColor

    torch.manual_seed(seed)
    network = DDColor(encoder_name="convnext-t", decoder_name="MultiScaleColorDecoder",
                      input_size=(TINY_INPUT_SIZE, TINY_INPUT_SIZE), nf=512, num_output_channels=2,
                      last_norm="Spectral", do_normalize=False, num_queries=num_queries, num_scales=3,
                      dec_layers=dec_layers)
    norms = [module for module in network.modules() if isinstance(module, nn.BatchNorm2d)]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a plain average over the calibration batch
    generator = torch.Generator().manual_seed(seed + 1)
    gray = torch.rand(2, 1, TINY_INPUT_SIZE, TINY_INPUT_SIZE, generator=generator).expand(-1, 3, -1, -1)
    network.train()
    with torch.no_grad():
        network(gray)
        last = network.decoder.color_decoder.color_embed.layers[-1]
        last.weight.mul_(colour)
        last.bias.mul_(colour)
    for norm in norms:
        norm.momentum = 0.1
    return network.eval().requires_grad_(False)


def ddcolor_state_dict(network: nn.Module) -> dict[str, torch.Tensor]:
    """The network's tensors as a released file holds them: with the ConvNeXt classifier head
    that DDColor's code no longer builds (spandrel's loader drops it: "they commented out
    head_cls"), so that loaders meet it."""
    state_dict = {key: value.detach().clone().contiguous() for key, value in network.state_dict().items()}
    features = state_dict["encoder.arch.norm.weight"].shape[0]
    generator = torch.Generator().manual_seed(7)
    state_dict["encoder.arch.head_cls.weight"] = torch.randn(4, features, generator=generator) * 0.02
    state_dict["encoder.arch.head_cls.bias"] = torch.zeros(4)
    return state_dict


def save_ddcolor(path: Path, seed: int = 0, **config) -> Path:
    """tiny_ddcolor(seed, **config) saved as piddnad/DDColor-models' .pth files are: torch.save of
    {"params": state dict} (BasicSR's container; upstream's ddcolor/pipeline.py reads ["params"])."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"params": ddcolor_state_dict(tiny_ddcolor(seed, **config))}, path)
    return path
