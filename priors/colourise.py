"""Colourising a whole photo with DDColor (Kang et al., ICCV 2023), its lightness kept at the
photo's own resolution.

Upstream's inference (piddnad/DDColor, ddcolor/pipeline.py, `ColorizationPipeline.process`, lines
88-127 at commit 2adb63f; the same steps in inference/colorization_pipeline.py, `process`):
  1. the photo's CIELAB lightness L at full resolution (cv2.cvtColor, float32 BGR -> Lab);
  2. the photo resized to input_size x input_size, its L taken and turned back into RGB with
     a* = b* = 0: a gray image of the photo's lightness, which the network sees;
  3. the network predicts a*, b* at input_size;
  4. a*, b* resized to the photo's size and put beside the photo's own L; Lab -> RGB.
Step 4 runs in bands of rows on the network's device (`colour_in_bands`), so a photo of any size
fits: only the network's input and the a*, b* at its size are whole-photo sized on the device.

Re-implemented here in torch (no arrays), step for step, with these choices:
  * CIELAB as OpenCV computes it from float sRGB (sRGB companding, D65, OpenCV's matrix and white
    point), so L, a*, b* mean what upstream's network was trained and run on. Lab(L, 0, 0) -> RGB
    is R = G = B = the sRGB encoding of the luminance Y: step 2's gray is computed as that.
  * Shrinking to the network's size is bilinear with antialiasing (cv2.resize's INTER_LINEAR,
    upstream's, reads 2 x 2 pixels per output pixel and aliases a photo many times larger);
    enlarging a*, b* is bilinear (upstream's F.interpolate default, nearest, paints blocks of
    photo / input_size pixels; spandrel's own DDColor call is bilinear).
  * Colours outside sRGB: OpenCV clips each channel, which changes the lightness. Here such a
    colour is moved, in linear RGB, toward the gray of its own luminance until it fits: luminance,
    and so L, is kept. Colours inside sRGB come out as the plain Lab -> RGB conversion gives them.

So the result's CIELAB L equals the photo's, everywhere, at the photo's full resolution: exactly
in real arithmetic, to float32 rounding in practice (about 1e-5 L units, L in 0..100, measured with
this module's conversion; tests/priors/test_colourise.py holds it under 0.01). Measured with
OpenCV's own float conversion the two agree to its precision, not better: OpenCV 5 computes float
Lab from lookup tables, 0.2 to 0.3 L units off the formulas (the test holds < 0.5). The network
only contributes a*, b*, at its own size.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..models.ddcolor import check_input_size, input_size_of

SRGB_TO_XYZ = ((0.412453, 0.357580, 0.180423),
               (0.212671, 0.715160, 0.072169),
               (0.019334, 0.119193, 0.950227))
"""Linear sRGB -> XYZ (D65), OpenCV's (imgproc color_lab.cpp, sRGB2XYZ_D65), as cv2.cvtColor's Lab."""
WHITE_X = sum(SRGB_TO_XYZ[0])
WHITE_Z = sum(SRGB_TO_XYZ[2])
"""OpenCV's D65 white (0.950456, 1, 1.088754): the rows' sums, so that gray has a* = b* = 0."""
LAB_EPSILON = 0.008856
"""Below this (linear) ratio CIELAB's cube root is a line: (6/29)^3."""
LAB_SLOPE = 7.787
LAB_OFFSET = 16.0 / 116.0
LAB_F_EPSILON = 6.0 / 29.0
"""f(LAB_EPSILON): where the inverse switches from the cube to the line."""


def _matrix(rows, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64).to(like.device, like.dtype)


def _apply(matrix: torch.Tensor, pixels: torch.Tensor) -> torch.Tensor:
    """A 3 x 3 colour matrix on B x 3 x H x W pixels."""
    return torch.einsum("ij,bjhw->bihw", matrix, pixels)


def srgb_to_linear(values: torch.Tensor) -> torch.Tensor:
    """sRGB's companding undone (IEC 61966-2-1), values in [0, 1]."""
    return torch.where(values <= 0.04045, values / 12.92, ((values + 0.055) / 1.055).pow(2.4))


def linear_to_srgb(values: torch.Tensor) -> torch.Tensor:
    """sRGB's companding, values in [0, 1]."""
    return torch.where(values <= 0.0031308, values * 12.92, 1.055 * values.clamp_min(0.0031308).pow(1 / 2.4) - 0.055)


def lab_f(ratio: torch.Tensor) -> torch.Tensor:
    """CIELAB's f: the cube root, a line near black."""
    return torch.where(ratio > LAB_EPSILON, ratio.clamp_min(LAB_EPSILON).pow(1 / 3), LAB_SLOPE * ratio + LAB_OFFSET)


def lab_f_inverse(value: torch.Tensor) -> torch.Tensor:
    return torch.where(value > LAB_F_EPSILON, value.pow(3), (value - LAB_OFFSET) / LAB_SLOPE)


def luminance(linear: torch.Tensor) -> torch.Tensor:
    """Y (B x 1 x H x W) of linear sRGB B x 3 x H x W: CIELAB's L is 116 f(Y) - 16."""
    weights = _matrix(SRGB_TO_XYZ[1], linear).view(1, 3, 1, 1)
    return (linear * weights).sum(1, keepdim=True)


def rgb_to_lab(image: torch.Tensor) -> torch.Tensor:
    """sRGB B x 3 x H x W in [0, 1] -> CIELAB (L in 0..100, a*, b*), as cv2.cvtColor converts float
    images (to its lookup tables' precision)."""
    xyz = _apply(_matrix(SRGB_TO_XYZ, image), srgb_to_linear(image.clamp(0, 1)))
    fx, fy, fz = lab_f(xyz[:, :1] / WHITE_X), lab_f(xyz[:, 1:2]), lab_f(xyz[:, 2:] / WHITE_Z)
    return torch.cat([116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)], 1)


def lightness(image: torch.Tensor) -> torch.Tensor:
    """CIELAB L (B x 1 x H x W, 0..100) of sRGB B x 3 x H x W in [0, 1]."""
    return 116 * lab_f(luminance(srgb_to_linear(image.clamp(0, 1)))) - 16


def colour_of(luma: torch.Tensor, ab: torch.Tensor) -> torch.Tensor:
    """sRGB B x 3 x H x W in [0, 1] of the luminance Y (B x 1 x H x W, what CIELAB's L stands for)
    and CIELAB a*, b* (B x 2 x H x W). A colour outside sRGB is moved straight toward the gray of
    the same luminance in linear RGB, as little as makes it fit: its luminance is kept exactly (the
    gray's is Y, and luminance is linear in RGB), its hue nearly, its chroma lowered."""
    fy = lab_f(luma)
    x = WHITE_X * lab_f_inverse(fy + ab[:, :1] / 500)
    z = WHITE_Z * lab_f_inverse(fy - ab[:, 1:] / 200)
    xyz_to_srgb = torch.linalg.inv(torch.tensor(SRGB_TO_XYZ, dtype=torch.float64)).to(luma.device, luma.dtype)
    linear = _apply(xyz_to_srgb, torch.cat([x, luma, z], 1))
    away = linear - luma  # from the gray of the same luminance
    room = torch.where(away >= 0, 1 - luma, luma) / away.abs().clamp_min(1e-12)
    fit = room.amin(1, keepdim=True).clamp(0, 1)
    return linear_to_srgb((luma + fit * away).clamp(0, 1))


def network_input(rgb: torch.Tensor, input_size: int) -> torch.Tensor:
    """What DDColor sees of sRGB photos B x 3 x H x W in [0, 1]: the photos at input_size x
    input_size (bilinear, antialiased when shrinking), as gray of their own lightness (R = G = B:
    Lab(L, 0, 0) in RGB), B x 3 x S x S float32."""
    small = F.interpolate(rgb.float(), size=(input_size, input_size), mode="bilinear", align_corners=False,
                          antialias=True).clamp(0, 1)
    return linear_to_srgb(luminance(srgb_to_linear(small))).expand(-1, 3, -1, -1)


def predict_ab(network: nn.Module, gray: torch.Tensor) -> torch.Tensor:
    """The network's CIELAB a*, b* (B x 2 x S x S, float32) for its gray input, run on its device
    and dtype. A network in half or bfloat16 runs under autocast: DDColor's colour decoder adds
    sine position encodings it makes in float32 (spandrel_extra_arches' position_encoding.py), which
    a plain half-precision forward refuses to mix."""
    parameter = next(network.parameters())
    gray = gray.to(parameter.device, parameter.dtype)
    reduced = parameter.dtype in (torch.float16, torch.bfloat16)
    with torch.no_grad(), torch.autocast(parameter.device.type, dtype=parameter.dtype, enabled=reduced):
        ab = network(gray)
    if ab.ndim != 4 or ab.shape[1] != 2:
        raise ValueError(f"expected the network to predict a*, b* (B x 2 x H x W), got shape {tuple(ab.shape)}: "
                         "is it a DDColor colouriser (the released files predict 2 channels)?")
    return ab.float()


def _rgb_and_alpha(photo: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """1 channel: gray; 2: gray and alpha; 3: RGB; 4: RGB and alpha."""
    channels = photo.shape[1]
    if channels in (1, 2):
        return photo[:, :1].expand(-1, 3, -1, -1), photo[:, 1:] if channels == 2 else None
    if channels in (3, 4):
        return photo[:, :3], photo[:, 3:] if channels == 4 else None
    raise ValueError(f"expected photos with 1 to 4 channels (gray, gray + alpha, RGB, RGBA), got {channels}")


COLOUR_BAND_BYTES = 256 * 2 ** 20
"""Device memory the full-resolution colour maths may use at once (rows of the photo at a time)."""
COLOUR_BYTES_PER_PIXEL = 4 * 28
"""fp32 values the colour maths holds per pixel of a band (RGB, linear RGB, Y, a*b*, XYZ, the move
toward gray, the result, and the temporaries of their expressions), counted generously."""


def band_rows(width: int, band_bytes: int = COLOUR_BAND_BYTES) -> int:
    """Rows of a `width`-pixel photo whose colour maths fits `band_bytes` (at least one)."""
    return max(1, band_bytes // (max(width, 1) * COLOUR_BYTES_PER_PIXEL))


def enlarged_rows(ab: torch.Tensor, height: int, start: int, stop: int) -> torch.Tensor:
    """Rows [start, stop) of `ab` (B x 2 x S x W, already at the photo's width) enlarged to `height`
    rows, bilinear with align_corners False (F.interpolate's source rows and weights: its values to
    float rounding). Each row is computed from its own two source rows alone, so any split into bands
    gives the same values."""
    rows = torch.arange(start, stop, device=ab.device, dtype=torch.float32)
    source = ((rows + 0.5) * (ab.shape[-2] / height) - 0.5).clamp_min(0)
    top = source.floor().long().clamp_max(ab.shape[-2] - 1)
    bottom = (top + 1).clamp_max(ab.shape[-2] - 1)
    weight = (source - top).view(1, 1, -1, 1)
    return ab[:, :, top] * (1 - weight) + ab[:, :, bottom] * weight


def colour_in_bands(rgb: torch.Tensor, ab: torch.Tensor, rows: int, device: torch.device,
                    check_interrupt: Callable[[], None] | None = None) -> torch.Tensor:
    """The photo `rgb` (1 x 3 x H x W in [0, 1], any device) with its own luminance and the a*, b*
    of `ab` (1 x 2 x S x S) enlarged to its size: `colour_of`, computed `rows` rows at a time on
    `device`, gathered on `rgb`'s device. The same values whatever `rows` is (each pixel's arithmetic
    does not depend on the band; vectorised kernels may round a last bit differently, 1e-7)."""
    height, width = rgb.shape[-2:]
    wide = F.interpolate(ab.to(device), size=(ab.shape[-2], width), mode="bilinear", align_corners=False)
    result = torch.empty(rgb.shape, dtype=torch.float32, device=rgb.device)
    for start in range(0, height, rows):
        if check_interrupt is not None and start:
            check_interrupt()
        stop = min(start + rows, height)
        band = rgb[:, :, start:stop].to(device, torch.float32)
        result[:, :, start:stop] = colour_of(luminance(srgb_to_linear(band)),
                                             enlarged_rows(wide, height, start, stop)).to(rgb.device)
    return result


def colourise(network, image: torch.Tensor, input_size: int | None = None,
              check_interrupt: Callable[[], None] | None = None, rows: int | None = None,
              check_band: Callable[[], None] | None = None) -> torch.Tensor:
    """Photos B x C x H x W in [0, 1] in colour: B x 3 x H x W (C = 1 or 3) or B x 4 x H x W with the
    alpha kept as it is (C = 2 or 4), float32 on the photos' device. Each photo's CIELAB L is kept
    at full resolution; only a*, b* come from `network` (DDColor: a module, or spandrel's descriptor
    of one), run at `input_size` px (None: the size `models.ddcolor.build` set on it), one photo at
    a time on the network's device and dtype, `check_interrupt()` before each. The full-resolution
    colour maths runs on the network's device `rows` rows at a time (None: as many as fit
    COLOUR_BAND_BYTES), so device memory does not grow with the photo; `check_band()` before each
    band but the first. Any size (1 x 1 up), any aspect; the colour of a photo already in colour is
    replaced (only its lightness is read)."""
    if image.ndim != 4:
        raise ValueError(f"expected photos B x C x H x W, got shape {tuple(image.shape)}")
    if not isinstance(network, nn.Module) and isinstance(getattr(network, "model", None), nn.Module):
        network = network.model  # spandrel's descriptor
    if not isinstance(network, nn.Module):
        raise ValueError("colourising needs a DDColor network (e.g. ddcolor_modelscope.pth, loaded by its loader)")
    size = check_input_size(input_size_of(network) if input_size is None else input_size)
    network.eval()
    device = next(network.parameters()).device
    rows = band_rows(image.shape[-1]) if rows is None else rows
    results = []
    for index in range(image.shape[0]):
        if check_interrupt is not None:
            check_interrupt()
        rgb, alpha = _rgb_and_alpha(image[index:index + 1].float())
        rgb = rgb.clamp(0, 1)
        ab = predict_ab(network, network_input(rgb, size))  # shrunk where the photo is
        result = colour_in_bands(rgb, ab, rows, device, check_band)
        if alpha is not None:
            result = torch.cat([result, alpha], 1)
        results.append(result.to(image.device))
    return torch.cat(results) if results else image.new_zeros((0, 3 if image.shape[1] in (1, 3) else 4,
                                                               *image.shape[-2:]), dtype=torch.float32)
