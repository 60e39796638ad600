"""Photorealistic colour transfer with CAP-VSTNet: the reversible network's features of the content
are whitened and re-coloured with the style's feature statistics (cWCT), then mapped back.

`cwct_transfer` works on features; `CapVstnetTransfer(network)` wraps a loaded
`models.cap_vstnet.RevResNet` into the signature of the method's `ColourTransfer`
(ssdiff_core.colour_transfer).
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F

from ..ssdiff_core.variant import PAPER, MethodVariant

MIN_REGION_PIXELS = 11
"""A region needs more than 10 pixels in both images for its statistics to count (upstream's
rule for a segmentation label); otherwise its features are left as they are."""

MAX_REGION_RATIO = 100
"""Nor is a region transferred when its pixel counts in the two images differ 100-fold or more."""

MAX_CHOLESKY_TRIES = 10_000


def _cholesky(covariance: torch.Tensor, eps: float) -> torch.Tensor:
    """Lower Cholesky factor; as upstream, on failure eps*I is added, then 2*eps*I more, then
    3*eps*I more, ... until it succeeds."""
    factor, info = torch.linalg.cholesky_ex(covariance)
    if not info.item():
        return factor
    if not torch.isfinite(covariance).all():
        raise ValueError("feature covariance is not finite")
    identity = torch.eye(covariance.shape[-1], dtype=covariance.dtype, device=covariance.device)
    step = eps
    for _ in range(MAX_CHOLESKY_TRIES):
        covariance = covariance + step * identity
        factor, info = torch.linalg.cholesky_ex(covariance)
        if not info.item():
            return factor
        step += eps
    raise RuntimeError("Cholesky decomposition of the feature covariance did not succeed")


def _statistics(features: torch.Tensor, eps: float) -> tuple[torch.Tensor, torch.Tensor,
                                                            torch.Tensor]:
    """N x P features -> (centred features, mean N x 1, Cholesky factor of the covariance)."""
    mean = features.mean(dim=1, keepdim=True)
    centred = features - mean
    covariance = centred @ centred.T / (features.shape[1] - 1)
    return centred, mean, _cholesky(covariance, eps)


def _region_valid(content_pixels: int, style_pixels: int) -> bool:
    return (content_pixels >= MIN_REGION_PIXELS and style_pixels >= MIN_REGION_PIXELS
            and content_pixels < MAX_REGION_RATIO * style_pixels
            and style_pixels < MAX_REGION_RATIO * content_pixels)


def _check_region(region: torch.Tensor | None, features: torch.Tensor, name: str) -> None:
    if region is None:
        return
    expected = (features.shape[0], 1, *features.shape[2:])
    if region.dtype != torch.bool or tuple(region.shape) != expected:
        raise ValueError(f"{name} must be a boolean {expected} mask, got {region.dtype} "
                         f"{tuple(region.shape)}")


def cwct_transfer(content_features: torch.Tensor, style_features: torch.Tensor,
                  content_region: torch.Tensor | None = None,
                  style_region: torch.Tensor | None = None, eps: float = 2e-5) -> torch.Tensor:
    """Cholesky whitening-colouring transform, per image, in float64.

    Features: B x N x h x w (content) and B x N x hs x ws (style; batch B or 1). Each content
    image's features are centred, whitened with the inverse Cholesky factor of their covariance,
    coloured with the style's Cholesky factor and given the style's mean.

    Regions: boolean B x 1 x h x w (hs x ws for the style) at feature resolution; None means the
    whole image. Statistics are taken over region pixels only and only the content's region
    pixels are replaced; the others keep the content features bit for bit. An image whose
    regions fail the size rule (MIN_REGION_PIXELS, MAX_REGION_RATIO) keeps its content features.
    Without regions every pixel counts and no size rule applies, as upstream.
    """
    if content_features.dim() != 4 or style_features.dim() != 4 or \
            style_features.shape[1] != content_features.shape[1] or \
            style_features.shape[0] not in (1, content_features.shape[0]):
        raise ValueError(f"expected B x N x h x w features with matching N and batch, got "
                         f"{tuple(content_features.shape)} and {tuple(style_features.shape)}")
    batch, channels = content_features.shape[:2]
    _check_region(content_region, content_features, "content region")
    _check_region(style_region, style_features, "style region")
    restricted = content_region is not None or style_region is not None
    # float64 is not available on every backend (MPS): the small matrices go to the CPU there.
    device = content_features.device
    work = torch.device("cpu") if device.type == "mps" else device

    results = []
    for index in range(batch):
        content = content_features[index].reshape(channels, -1).to(work, torch.float64)
        style_index = index if style_features.shape[0] == batch else 0
        style = style_features[style_index].reshape(channels, -1).to(work, torch.float64)
        content_mask = style_mask = None
        if content_region is not None:
            content_mask = content_region[index].reshape(-1).to(work)
            content = content[:, content_mask]
        if style_region is not None:
            style_mask = style_region[style_index].reshape(-1).to(work)
            style = style[:, style_mask]
        if restricted and not _region_valid(content.shape[1], style.shape[1]):
            results.append(content_features[index])
            continue

        centred, _, content_factor = _statistics(content, eps)
        _, style_mean, style_factor = _statistics(style, eps)
        whitened = torch.linalg.solve_triangular(content_factor, centred, upper=False)
        coloured = (style_factor @ whitened + style_mean).to(device, content_features.dtype)
        if content_mask is None:
            results.append(coloured.reshape(content_features.shape[1:]))
        else:
            flat = content_features[index].reshape(channels, -1)
            mask = content_mask.to(device)
            placed = flat.new_zeros(flat.shape)
            placed[:, mask] = coloured
            results.append(torch.where(mask, placed, flat).reshape(content_features.shape[1:]))
    return torch.stack(results)


def _pad_to(image: torch.Tensor, height: int, width: int, mode: str = "replicate",
            value: float = 0.0) -> torch.Tensor:
    extra = (0, width - image.shape[-1], 0, height - image.shape[-2])
    if not any(extra):
        return image
    if mode == "constant":
        return F.pad(image, extra, value=value)
    return F.pad(image, extra, mode=mode)


@dataclass(frozen=True)
class CapVstnetTransfer:
    """The `ColourTransfer` (content, style, region) -> recoloured content of a loaded RevResNet.

    content, style: B x 3 x H x W in [-1, 1] (a style of batch 1 serves every content image);
    region: boolean B x 1 x H x W, the pixels whose colour is transferred and whose statistics
    count, in both images.

    The network saw [0, 1] images in training, so inputs are mapped there (and clamped), and the
    output is clamped to [0, 1] and mapped back. Under the RELEASED_CODE variant, the network gets the
    [-1, 1] images as they are and its output is used unclamped, as the released SSDiff code's
    `run_style_transfer_tensor` does (`reference_compat`). Its sides must be multiples of
    `network.down_scale` (4): upstream floors the image to them, which loses pixels; here both
    images are padded on the bottom and right by edge replication up to the next multiple (at
    least `network.min_side`), the padding kept out of the region and so out of the statistics,
    and the result cropped back. Padding instead of resizing keeps the input's exact size
    without resampling the pixels that are kept. The region is brought to feature resolution by
    area averaging (> 0.5); for the photorealistic model the features have the image's
    resolution and it is used as is. Pixels outside the region are the content's, bit for bit.
    Computed on the network's device and dtype, returned on the content's; works with
    gradients off and under `torch.inference_mode()`.
    """
    network: torch.nn.Module
    eps: float = 2e-5
    variant: MethodVariant = PAPER
    """The stages hand their own (for_variant)."""

    def for_variant(self, variant: MethodVariant) -> "CapVstnetTransfer":
        return replace(self, variant=variant)

    @property
    def released_code(self) -> bool:
        return self.variant.colour_network_unclamped

    def _network_input(self, image: torch.Tensor) -> torch.Tensor:
        return image if self.released_code else ((image + 1) / 2).clamp(0, 1)

    def _from_network_output(self, image: torch.Tensor) -> torch.Tensor:
        return image if self.released_code else image.clamp(0, 1) * 2 - 1

    def __call__(self, content: torch.Tensor, style: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
        if content.dim() != 4 or style.dim() != 4 or content.shape[1] != 3 or \
                style.shape[1:] != content.shape[1:] or style.shape[0] not in (1, content.shape[0]):
            raise ValueError(f"expected content and style B x 3 x H x W of one size, got "
                             f"{tuple(content.shape)} and {tuple(style.shape)}")
        if region.dtype != torch.bool or \
                tuple(region.shape) != (content.shape[0], 1, *content.shape[2:]):
            raise ValueError(f"region must be a boolean {(content.shape[0], 1, *content.shape[2:])}"
                             f" mask, got {region.dtype} {tuple(region.shape)}")
        network = self.network
        parameter = next(network.parameters())
        height, width = content.shape[-2:]
        step, smallest = network.down_scale, network.min_side
        padded_height = max(-(-height // step) * step, smallest)
        padded_width = max(-(-width // step) * step, smallest)

        with torch.no_grad():
            def prepared(image: torch.Tensor) -> torch.Tensor:
                image = self._network_input(image.to(parameter.device, parameter.dtype))
                return _pad_to(image, padded_height, padded_width)

            inside = _pad_to(region.to(parameter.device, parameter.dtype), padded_height,
                             padded_width, mode="constant")
            content_features = network(prepared(content), forward=True)
            style_features = network(prepared(style.expand_as(content)), forward=True)
            feature_size = content_features.shape[-2:]
            if feature_size != inside.shape[-2:]:
                inside = F.interpolate(inside, size=feature_size, mode="area")
            inside = inside > 0.5
            mixed = cwct_transfer(content_features, style_features, inside, inside, self.eps)
            image = network(mixed, forward=False)[..., :height, :width]
            recoloured = self._from_network_output(image).to(content.device, content.dtype)
            return torch.where(region, recoloured, content)
