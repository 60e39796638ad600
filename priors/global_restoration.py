"""BOPBTL's global restoration (stage 1 of "Bringing Old Photos Back to Life") as pure functions over
B x 3 x H x W photos in [0, 1]: the pre-processing of the released `Global/test.py`, the networks
of `models.bopbtl_global`, and the post-processing of test.py's saved result.

Line numbers cite microsoft/Bringing-Old-Photos-Back-to-Life @ 33875ec. Per image, as run.py runs
test.py (one image at a time, fp32, batch 1):

- The photo is read as an 8-bit RGB file (test.py:135): here its [0, 1] values are rounded to 8-bit
  levels; a grayscale (1-channel) photo becomes three equal channels and an alpha channel is dropped,
  as PIL's `convert("RGB")` does.
- "quality": `--test_mode Full` (run.py:53-62): each side rounded to the nearest multiple of 4 with
  Python's `round` (ties to even), PIL bilinear resize only when a side changed (test.py:18-36).
- "scratch", "scratch_hr": the detector's `full_size` input (detection.py, run.py:63-95): each side
  rounded to the nearest multiple of 16, PIL bicubic resize only when a side changed; the mask
  (1 = damaged, thresholded at 0.5) goes to that size by nearest neighbour. With `--HR` the mask is
  dilated by cv2.dilate(3 x 3 ones, 3 iterations), a 7 x 7 maximum (test.py:142-146). Damaged pixels
  are filled with white (test.py:47-56).
- ToTensor and Normalize(0.5, 0.5) to [-1, 1] (test.py:123-126); VAE_A's encoder, the mapping,
  VAE_B's decoder (mapping_model.py:325-346).
- test.py saves `(g + 1) / 2` with `save_image(normalize=True)` (test.py:184-190): the whole image
  stretched from its own minimum and maximum to [0, 1], then rounded to 8-bit levels. That is
  `postprocess="released"`; `"model"` gives `(g + 1) / 2` clamped to [0, 1] without stretching.
- Sizes under 8 (quality) or 16 (scratch) pixels are raised to those (the released code fails there).

The released output has the processed size (multiples of 4 or 16); here it is resized back to the
input's size (bicubic, antialiased), and left as it is where the sizes already agree.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..models.bopbtl_global import DEFAULT_CHUNK_BYTES, MODES, GlobalRestorationNetworks, Mode
from .arrays import image_array, image_tensor

Postprocess = Literal["released", "model"]
POSTPROCESSING: tuple[Postprocess, ...] = ("released", "model")
Attention = Literal["chunked", "dense"]
MULTIPLE: dict[Mode, int] = {"quality": 4, "scratch": 16, "scratch_hr": 16}
"""Each processed side is a multiple of this (test.py:30-31 for quality; the detector for scratch)."""
MINIMUM_SIDE: dict[Mode, int] = {"quality": 8, "scratch": 16, "scratch_hr": 16}
"""Smallest processed side: the latent (1/4) needs 2 positions for the reflection padding."""
HR_MASK_DILATION = 3
"""test.py:91: `mask_dilation = 3` with --HR, 0 otherwise."""
BYTES_PER_PIXEL: dict[Mode, int] = {"quality": 900, "scratch": 900, "scratch_hr": 1100}
"""Working memory per processed pixel, fp32, beyond the non-local block's chunk budget: measured on
the CPU with random networks (bench/memory.py's profiler): quality 884 B/px at 256 x 256 and
384 x 512; scratch 958 B/px at 3 MP (2,748 MiB, docs/benchmarks.md), HR 1,051 B/px at 384 x 512."""
FIXED_BYTES = 16 << 20
"""Beyond the pixels' share, whatever the size (975 B/px were measured at 128 x 192)."""
RESAMPLING: dict[Mode, Image.Resampling] = {"quality": Image.Resampling.BILINEAR,
                                             "scratch": Image.Resampling.BICUBIC,
                                             "scratch_hr": Image.Resampling.BICUBIC}


def processed_size(height: int, width: int, mode: Mode) -> tuple[int, int]:
    """(height, width) the networks see: each side rounded to the nearest multiple of 4 (quality) or
    16 (scratch modes), Python's round (half to even: 18 -> 16 for 4, 24 -> 32 for 16), not below
    MINIMUM_SIDE."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    multiple = MULTIPLE[mode]
    return tuple(max(MINIMUM_SIDE[mode], int(round(side / multiple)) * multiple) for side in (height, width))


def working_bytes(height: int, width: int, mode: Mode, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """About the memory one photo of height x width takes through the global restoration in fp32:
    BYTES_PER_PIXEL of its processed size, plus the attention's chunk budget in the scratch modes
    (an upper estimate: tests/priors/test_global_restoration.py holds it above the measured)."""
    processed_height, processed_width = processed_size(height, width, mode)
    attention = 0 if mode == "quality" else chunk_bytes
    return processed_height * processed_width * BYTES_PER_PIXEL[mode] + attention + FIXED_BYTES


def _levels(image: torch.Tensor) -> torch.Tensor:
    """C x H x W in [0, 1] to 3 x H x W uint8 levels on the CPU, as PIL's convert("RGB") of the file."""
    levels = torch.nan_to_num(image.detach().float(), nan=0.0).clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    if levels.shape[0] == 1:
        return levels.expand(3, -1, -1)
    return levels[:3]


def _resized_levels(levels: torch.Tensor, size: tuple[int, int], resample: Image.Resampling) -> torch.Tensor:
    if tuple(levels.shape[1:]) == size:
        return levels
    resized = Image.fromarray(image_array(levels)).resize((size[1], size[0]), resample)
    return image_tensor(np.array(resized))


def dilate(mask: torch.Tensor, iterations: int) -> torch.Tensor:
    """cv2.dilate with a 3 x 3 ones kernel, `iterations` times (its default border never wins): a
    (2 * iterations + 1)-square maximum over ... x 1 x H x W."""
    if iterations <= 0:
        return mask
    size = 2 * iterations + 1
    return F.max_pool2d(mask, size, stride=1, padding=iterations)


def _stretched_levels(g: torch.Tensor) -> torch.Tensor:
    """torchvision's save_image(normalize=True) of one image, read back: min-max stretch over all
    channels (make_grid's norm_ip), x 255 + 0.5, clamp, truncated to uint8; then / 255."""
    stretched = g.clone()
    low, high = float(stretched.min()), float(stretched.max())
    stretched.clamp_(min=low, max=high)
    stretched.sub_(low).div_(max(high - low, 1e-5))
    return stretched.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).float() / 255


def _mask_of(mask: torch.Tensor | None, image: torch.Tensor, mode: Mode) -> torch.Tensor | None:
    if mode == "quality":
        if mask is not None:
            raise ValueError("the quality mode takes no mask (its mapping has no mask input): use a scratch mode")
        return None
    if mask is None:
        raise ValueError(f"the {mode} mode needs a mask (1 = damaged), B x 1 x H x W like the photo")
    if mask.ndim != 4 or mask.shape[1] != 1 or mask.shape[2:] != image.shape[2:] or \
            mask.shape[0] not in (1, image.shape[0]):
        raise ValueError(f"mask has shape {tuple(mask.shape)}, expected ({image.shape[0]} or 1) x 1 x "
                         f"{image.shape[2]} x {image.shape[3]}")
    return mask


@torch.no_grad()
def network_output(networks: GlobalRestorationNetworks, image: torch.Tensor, mask: torch.Tensor | None = None, *,
                   mask_dilation: int | None = None, chunk: int | None = None,
                   chunk_bytes: int = DEFAULT_CHUNK_BYTES, attention: Attention = "chunked") -> torch.Tensor:
    """One photo, C x H x W in [0, 1] (C = 1, 3 or 4), and for the scratch modes its 1 x H x W mask
    (1 = damaged), through the released pre-processing and networks: the decoder's tanh output
    mapped to (g + 1) / 2, 3 x h x w at `processed_size`, float32 on the photo's device, not yet
    post-processed (see `restore_global` for the options)."""
    mode = networks.mode
    if attention not in ("chunked", "dense"):
        raise ValueError(f"attention must be 'chunked' or 'dense', got {attention!r}")
    if (mask is None) != (mode == "quality"):
        raise ValueError("the quality mode takes no mask" if mask is not None else
                         f"the {mode} mode needs a mask (1 = damaged), 1 x H x W like the photo")
    size = processed_size(image.shape[1], image.shape[2], mode)
    levels = _resized_levels(_levels(image), size, RESAMPLING[mode]).float()
    holes = None
    if mode != "quality":
        holes = (mask.detach().float().cpu() > 0.5).float()[None]
        if tuple(holes.shape[2:]) != size:
            holes = F.interpolate(holes, size, mode="nearest")
        iterations = (HR_MASK_DILATION if mode == "scratch_hr" else 0) if mask_dilation is None else mask_dilation
        holes = dilate(holes, iterations)
        levels = levels * (1 - holes[0]) + holes[0] * 255
    x = (levels[None] / 255 - 0.5) / 0.5
    encoder, mapping, decoder = networks.encoder, networks.mapping, networks.decoder
    for network in (encoder, mapping, decoder):
        network.eval()
    weight = next(encoder.parameters())
    features = encoder(x.to(weight.device, weight.dtype))
    weight = next(mapping.parameters())
    features = features.to(weight.device, weight.dtype)
    if holes is None:
        mapped = mapping(features)
    else:
        mapped = mapping(features, holes.to(weight.device, weight.dtype), chunk=chunk, chunk_bytes=chunk_bytes,
                         dense=attention == "dense")
    del features
    weight = next(decoder.parameters())
    restored = decoder(mapped.to(weight.device, weight.dtype))[0].float().to(image.device)
    return (restored + 1) / 2


def postprocessed(g: torch.Tensor, postprocess: Postprocess = "released") -> torch.Tensor:
    """"released": test.py's saved PNG read back (min-max stretch, 8-bit levels); "model": g clamped
    to [0, 1]."""
    if postprocess == "released":
        return _stretched_levels(g)
    if postprocess == "model":
        return g.clamp(0, 1)
    raise ValueError(f"postprocess must be one of {POSTPROCESSING}, got {postprocess!r}")


def restore_at_processed_size(networks: GlobalRestorationNetworks, image: torch.Tensor,
                              mask: torch.Tensor | None = None, *, postprocess: Postprocess = "released",
                              mask_dilation: int | None = None, chunk: int | None = None,
                              chunk_bytes: int = DEFAULT_CHUNK_BYTES, attention: Attention = "chunked") -> torch.Tensor:
    """`network_output` post-processed: one photo restored, 3 x h x w in [0, 1] at `processed_size`."""
    if postprocess not in POSTPROCESSING:
        raise ValueError(f"postprocess must be one of {POSTPROCESSING}, got {postprocess!r}")
    g = network_output(networks, image, mask, mask_dilation=mask_dilation, chunk=chunk, chunk_bytes=chunk_bytes,
                       attention=attention)
    return postprocessed(g, postprocess)


def restore_global(networks: GlobalRestorationNetworks, image: torch.Tensor, mask: torch.Tensor | None = None, *,
                   postprocess: Postprocess = "released", mask_dilation: int | None = None,
                   chunk: int | None = None, chunk_bytes: int = DEFAULT_CHUNK_BYTES, attention: Attention = "chunked",
                   check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """BOPBTL's global restoration of B x C x H x W photos in [0, 1] (C = 3; 1 and 4 as PIL's
    convert("RGB") takes them), any size: B x 3 x H x W in [0, 1], float32 on the photos' device.

    The mode is the mapping's (`networks.mode`): "quality" takes no mask; "scratch" and "scratch_hr"
    take `mask`, (B or 1) x 1 x H x W, 1 = damaged (values above 0.5). `mask_dilation` overrides the
    released dilation (3 iterations of 3 x 3 with HR, none without). `postprocess` is "released"
    (test.py's saved PNG: min-max stretched, 8-bit levels) or "model" ((g + 1) / 2, clamped).
    The non-local attention runs `chunk` query rows at a time, or as many as fit `chunk_bytes`
    (about two chunk x N fp32 buffers), or as released with `attention="dense"` (N x N matrices;
    for tests and benchmarks). Photos go through the networks one at a time, on each network's
    device and dtype; `check_interrupt` is called before each."""
    if image.ndim != 4 or image.shape[1] not in (1, 3, 4):
        raise ValueError(f"expected a B x 3 x H x W photo (or 1 or 4 channels), got shape {tuple(image.shape)}")
    mask = _mask_of(mask, image, networks.mode)
    batch, _, height, width = image.shape
    restored = torch.empty(batch, 3, height, width, device=image.device)
    for index in range(batch):
        if check_interrupt is not None:
            check_interrupt()
        one = restore_at_processed_size(
            networks, image[index], None if mask is None else mask[index if mask.shape[0] > 1 else 0],
            postprocess=postprocess, mask_dilation=mask_dilation, chunk=chunk, chunk_bytes=chunk_bytes,
            attention=attention)
        if tuple(one.shape[1:]) != (height, width):
            one = F.interpolate(one[None], (height, width), mode="bicubic", align_corners=False,
                                antialias=True)[0].clamp(0, 1)
        restored[index] = one
    return restored
