"""The face DDPM as a ComfyUI MODEL (eps prediction, 1000 linear betas, learned variance, pixel
space), ComfyUI's pixel-space VAE, and the model's noise levels in float64."""
from __future__ import annotations

import logging

import torch

import comfy.latent_formats
import comfy.ldm.modules.diffusionmodules.util as diffusion_util
import comfy.model_base
import comfy.model_management
import comfy.model_patcher
import comfy.ops
import comfy.sd
import comfy.supported_models_base

from ..models import guided_diffusion
from ..ssdiff_core.sampler import VARIANCE_SINK_KEY
from .checkpoints import load_checkpoint

WEIGHT_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


class FacePixelFormat(comfy.latent_formats.LatentFormat):
    """Pixel space: the 'latent' is the RGB image in [-1, 1]; previews show it as is."""
    latent_channels = 3
    latent_rgb_factors = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]


class FaceDDPMConfig(comfy.supported_models_base.BASE):
    unet_config = {}
    unet_extra_config = {}
    # LDM naming: "sqrt_linear" is linearly spaced betas (OpenAI's "linear" schedule).
    sampling_settings = {"beta_schedule": "sqrt_linear", "linear_start": 1e-4,
                         "linear_end": 0.02, "timesteps": 1000}
    latent_format = FacePixelFormat
    memory_usage_factor = 0.05
    supported_inference_dtypes = [torch.float32, torch.bfloat16, torch.float16]


class HostGroupNorm32(comfy.ops.disable_weight_init.GroupNorm):
    """The UNet's float32 GroupNorm as a ComfyUI layer: when ComfyUI streams its weights (it left
    them in system memory: --lowvram, --novram), ComfyUI casts them to the input's device and dtype,
    the input being cast to float32 first; otherwise the model's own forward."""

    def __init__(self, channels: int):
        super().__init__(32, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.comfy_cast_weights or self.weight_function or self.bias_function:
            return super().forward(x.float()).type(x.dtype)
        return guided_diffusion.GroupNorm32.forward(self, x)


class HostFaceOperations:
    """The face UNet's layers as ComfyUI's UNets have theirs (comfy.ops.disable_weight_init): the
    same parameters and forward, and ComfyUI may leave any of them in system memory and stream its
    weights to the GPU as it runs (partial loading under --lowvram and --novram, dynamic VRAM)."""
    Conv1d = comfy.ops.disable_weight_init.Conv1d
    Conv2d = comfy.ops.disable_weight_init.Conv2d
    Linear = comfy.ops.disable_weight_init.Linear
    GroupNorm32 = HostGroupNorm32


class HostFaceUNet(guided_diffusion.FaceUNet):
    """The face UNet with the diffusion_model calling convention of ComfyUI: returns eps and
    hands the full output (eps + learned-variance channels) to the sampler's VarianceSink. Its
    layers are ComfyUI's (HostFaceOperations)."""

    def __init__(self, config: guided_diffusion.FaceUNetConfig, operations=HostFaceOperations):
        super().__init__(config, operations)

    @property
    def dtype(self) -> torch.dtype:
        return next(self.parameters()).dtype

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor, context=None, control=None,
                transformer_options: dict | None = None, **kwargs) -> torch.Tensor:
        output = super().forward(x, timesteps)
        options = transformer_options or {}
        sink = options.get(VARIANCE_SINK_KEY)
        if sink is not None:
            sink.store(output, options.get("cond_or_uncond"))
        return output[:, : self.config.in_channels]


def face_ddpm_model(unet: HostFaceUNet, weight_dtype: torch.dtype = torch.float32) -> comfy.model_patcher.ModelPatcher:
    """Wraps the network as a ComfyUI MODEL: eps prediction, 1000 linear betas, pixel space."""
    config = FaceDDPMConfig({"disable_unet_model_creation": True})
    offload_device = comfy.model_management.unet_offload_device()
    model = comfy.model_base.BaseModel(config, comfy.model_base.ModelType.EPS, device=offload_device)
    model.diffusion_model = unet.to(device=offload_device, dtype=weight_dtype)
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=offload_device)


def load_face_ddpm(name: str, weight_dtype: str = "fp32") -> comfy.model_patcher.ModelPatcher:
    unet = load_checkpoint(guided_diffusion.FILE, name,
                           lambda state_dict: guided_diffusion.build(state_dict, HostFaceUNet))
    logging.info("SSDiff: loaded face DDPM %s (%s)", name, unet.config)
    model = face_ddpm_model(unet, WEIGHT_DTYPES[weight_dtype])
    # How ComfyUI (0.33 and later) rebuilds an independent copy of a MODEL: clone(force_deepcopy=True)
    # in its training nodes, a copy per GPU, a non-dynamic delegate under dynamic VRAM.
    model.cached_patcher_init = (reload_face_ddpm, (name, weight_dtype))
    return model


def reload_face_ddpm(name: str, weight_dtype: str, disable_dynamic: bool = False) -> comfy.model_patcher.ModelPatcher:
    """ComfyUI's cached_patcher_init call: the face MODEL is a plain ModelPatcher, never a dynamic
    one (its network has no comfy.ops layers to stream), so `disable_dynamic` changes nothing."""
    return load_face_ddpm(name, weight_dtype)


def pixel_space_vae() -> comfy.sd.VAE:
    """ComfyUI's pixel-space VAE (the VAELoader 'pixel_space' entry): IMAGE <-> [-1, 1] latent."""
    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


def empty_conditioning() -> list:
    return [[torch.zeros(1, 1, 8), {}]]


def schedule_sigmas(base_model: comfy.model_base.BaseModel) -> torch.Tensor:
    """The model's discrete noise levels in float64, rebuilt from its beta schedule (ComfyUI
    keeps them in float32); its own float32 levels where the schedule is not a plain one."""
    stored = base_model.model_sampling.sigmas.detach().cpu()
    settings = base_model.model_config.sampling_settings
    try:
        betas = diffusion_util.make_beta_schedule(
            settings.get("beta_schedule", "linear"), settings.get("timesteps", 1000),
            linear_start=settings.get("linear_start", 0.00085), linear_end=settings.get("linear_end", 0.012))
    except (NotImplementedError, ValueError, TypeError):
        return stored.double()
    alphas_cumprod = torch.cumprod(1 - torch.as_tensor(betas, dtype=torch.float64), dim=0)
    sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    if sigmas.shape == stored.shape and torch.allclose(sigmas.float(), stored, rtol=1e-5):
        return sigmas
    return stored.double()
