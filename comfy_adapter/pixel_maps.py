"""How a latent model's x0 reaches the pixel losses: the model's own pixels, its VAE decoder (on
a private copy, for autograd) or its latent -> RGB preview factors."""
from __future__ import annotations

import copy
import weakref
from typing import Literal

import torch

import comfy.latent_formats
import comfy.model_base
import comfy.sd

from ..ssdiff_core.pixel_space import LinearRGBMap, PixelMap, ToPixels
from .face_model import FacePixelFormat


LatentGuidance = Literal["vae_decoder", "vae_decoder_bf16", "latent_rgb_approximation"]
LATENT_GUIDANCE: dict[LatentGuidance, torch.dtype | None] = {
    "vae_decoder": None,
    "vae_decoder_bf16": torch.bfloat16,
    "latent_rgb_approximation": None,
}
"""How a latent model's x0 reaches the pixel losses: through the VAE decoder (exact; memory for
its activations, halved in bf16) or the latent -> RGB preview factors (fast, no VAE, approximate);
the decoder's dtype for each (None: float32)."""


def is_pixel_model(base_model: comfy.model_base.BaseModel) -> bool:
    pixel_formats = tuple(cls for cls in (FacePixelFormat, getattr(comfy.latent_formats, "ChromaRadiance", None))
                          if cls is not None)
    return isinstance(base_model.latent_format, pixel_formats)


def vae_scale(vae: comfy.sd.VAE | None) -> int:
    """Pixels per latent pixel along each side: the VAE's, or SD's 8 when it is unknown (no VAE, or a
    video VAE whose ratio is not a plain number)."""
    return vae.downscale_ratio if vae is not None and isinstance(vae.downscale_ratio, int) else 8


HOST_MEMORY_STATE = (
    "_v", "_v_signature", "_v_weight", "_v_bias", "_prefetch", "_pin_state", "seed_key",
    "dynamic_vbars", "dynamic_pins", "dynamic_patchers", "current_patcher",
    "weight_function", "bias_function", "comfy_cast_weights", "prev_comfy_cast_weights",
    "comfy_patched_weights", "comfy_force_cast_weights",
)
"""What ComfyUI's memory management puts on the modules of a network it loaded: dynamic VRAM's
native host buffers and address-space slots (0.33 and later; their owners free raw pointers when
collected), the patcher itself, and lowvram's weight functions and cast flags."""


def private_copy(network: torch.nn.Module) -> torch.nn.Module:
    """A plain copy of a network ComfyUI loaded, made outside inference mode, with its weights as
    they are and none of HOST_MEMORY_STATE: a deep copy of that state would duplicate dynamic
    VRAM's native pointers (the copy's collection would free the original's buffers) and route
    the copy's forward through the loaded model's casts."""
    memo = {id(value): None for module in network.modules() for name in HOST_MEMORY_STATE
            if not isinstance(value := module.__dict__.get(name), (type(None), bool, int, float, str))}
    with torch.inference_mode(False):
        copied = copy.deepcopy(network, memo)
    for module in copied.modules():
        for name in HOST_MEMORY_STATE:
            module.__dict__.pop(name, None)
    not_loaded = [name for name, parameter in copied.named_parameters() if parameter.is_meta]
    if not_loaded:
        raise RuntimeError(f"{type(network).__name__} has weights that were never loaded ({not_loaded[:3]}, ...)")
    return copied.requires_grad_(False).eval()


_decoder_copies: "weakref.WeakKeyDictionary[torch.nn.Module, torch.nn.Module]" = weakref.WeakKeyDictionary()


class VaeDecoderMap:
    """The VAE's decoder as the pixel map. Autograd runs on a private copy made outside inference
    mode: the VAE that ComfyUI loaded holds inference tensors, which autograd cannot save."""

    def __init__(self, vae: comfy.sd.VAE, latent_format, dtype: torch.dtype | None = None):
        self.vae, self.latent_format, self.dtype = vae, latent_format, dtype
        self.scale = vae_scale(vae)

    def _decoder(self) -> torch.nn.Module:
        network = self.vae.first_stage_model
        decoder = _decoder_copies.get(network)
        if decoder is None or any(parameter.is_inference() for parameter in decoder.parameters()):
            decoder = private_copy(network)
            _decoder_copies[network] = decoder
        return decoder

    def prepare(self, sample: torch.Tensor) -> ToPixels:
        dtype = self.dtype or torch.float32
        with torch.inference_mode(False):
            decoder = self._decoder().to(device=sample.device, dtype=dtype)

        def to_pixels(x0: torch.Tensor) -> torch.Tensor:
            return decoder.decode(self.latent_format.process_out(x0).to(dtype)).float()
        return to_pixels


def latent_pixel_map(latent_format: comfy.latent_formats.LatentFormat, vae: comfy.sd.VAE | None,
                     latent_guidance: LatentGuidance) -> PixelMap:
    """How a latent model's x0 reaches the pixel losses under `latent_guidance`."""
    if vae is not None and vae.latent_channels != latent_format.latent_channels:
        kind = "the face DDPM's pixel VAE" if vae.latent_channels == 3 and vae_scale(vae) == 1 else "another model's VAE"
        raise ValueError(f"vae makes {vae.latent_channels}-channel latents ({kind}), but this MODEL samples "
                         f"{latent_format.latent_channels}-channel ones: connect the VAE of the model's own checkpoint")
    if latent_guidance == "latent_rgb_approximation":
        factors = getattr(latent_format, "latent_rgb_factors", None)
        if factors is None:
            raise ValueError(f"{type(latent_format).__name__} latents have no RGB preview factors: "
                             "use latent_guidance 'vae_decoder' with a VAE")
        return LinearRGBMap(factors, getattr(latent_format, "latent_rgb_factors_bias", None), vae_scale(vae))
    if vae is None:
        raise ValueError("a latent model (SD1.5, SDXL, ...) needs its VAE for SSDiff guidance with "
                         f"latent_guidance '{latent_guidance}': connect the checkpoint's VAE, or choose "
                         "'latent_rgb_approximation'")
    return VaeDecoderMap(vae, latent_format, LATENT_GUIDANCE[latent_guidance])
