"""SSDiff guidance on a latent model (SD1.5's classes in ComfyUI, tiny widths, random weights),
with its VAE, conditioning, CFG and a LoRA, in the real host."""
from __future__ import annotations

import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.ssdiff_core import losses
from stage_settings import ONE_STOP_SETTINGS, SELECTIVE_SETTINGS
from harness.tiny_models import save_unet_lora, sd15_model, sd_vae



@pytest.fixture(scope="module")
def sd(comfy):
    generator = torch.Generator().manual_seed(5)
    conditioning = [[torch.randn(1, 77, 32, generator=generator), {}]]
    uncond = [[torch.zeros(1, 77, 32), {}]]
    return sd15_model(), sd_vae(), conditioning, uncond


def face(height=64, width=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.nn.functional.interpolate(torch.rand(1, 3, 4, 4, generator=generator), size=(height, width),
                                             mode="bilinear", align_corners=False)
    return coarse.movedim(1, -1).contiguous()


def restore(comfy, sd, image, scale=0.0035, latent_guidance="vae_decoder", seed=3, steps=4, model=None,
            cfg_override=2.0, **extra):
    sd_model, vae, positive, negative = sd
    inputs = {**SELECTIVE_SETTINGS, "scale": scale, "latent_guidance": latent_guidance, "cfg": cfg_override,
              "seed": seed, "steps": steps, **extra}
    return execute(comfy, "SSDiffSampler", model=model or sd_model, vae=vae, positive=positive, negative=negative,
                   image=image, coarse_restoration=image, pseudo_reference=image, **inputs)[0]


@pytest.mark.parametrize("latent_guidance", ["vae_decoder", "vae_decoder_bf16", "latent_rgb_approximation"])
def test_the_latent_path_runs_at_any_size(comfy, sd, latent_guidance):
    image = face(50, 40)
    restored = restore(comfy, sd, image, latent_guidance=latent_guidance)
    assert restored.shape == image.shape and torch.isfinite(restored).all()


def decode_with_gradient(pack, vae, latent_format, x0: torch.Tensor,
                         target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(pixels, d structure loss / d latent) through the latent path's private decoder, as a node
    would run it: under inference mode, the loss outside it."""
    decoder_map = pack.comfy_adapter.pixel_maps.VaeDecoderMap(vae, latent_format)
    with torch.inference_mode():
        to_pixels = decoder_map.prepare(x0)
        with torch.inference_mode(False), torch.enable_grad():
            latent = x0.clone().requires_grad_(True)
            pixels = to_pixels(latent)
            loss = losses.structure_loss(pixels, target, torch.zeros(1, 1, *target.shape[-2:], dtype=torch.bool))
            gradient, = torch.autograd.grad(loss, latent)
    return pixels.detach(), gradient


def test_gradients_reach_the_latent_through_a_private_decoder(comfy, sd, pack):
    _, vae, _, _ = sd
    latent_format = sd[0].model.latent_format
    before = {key: value.clone() for key, value in vae.first_stage_model.state_dict().items()}
    with torch.inference_mode():  # as a sampler's x0 arrives
        x0 = torch.randn(1, 4, 8, 8)
    _, gradient = decode_with_gradient(pack, vae, latent_format, x0, face().movedim(-1, 1) * 2 - 1)
    assert gradient.shape == (1, 4, 8, 8) and torch.isfinite(gradient).all() and gradient.abs().sum() > 0
    for key, value in vae.first_stage_model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_guided_output_is_closer_to_the_structure_target(comfy, sd):
    image = face(64, 64, seed=7)
    distances = [(restore(comfy, sd, image, scale=scale, steps=6) - image).square().mean() for scale in (0.0, 0.5, 1.0)]
    assert distances[0] > distances[1] > distances[2]


def test_the_rgb_approximation_pulls_the_latents_preview_towards_the_target(comfy, sd, pack):
    """The approximation guides what the latent -> RGB factors show (with these random weights
    the real decoder has nothing to do with them, so that is what is measured)."""
    model, vae, positive, negative = sd
    image = face(64, 64, seed=7)
    latent, = execute(comfy, "VAEEncode", pixels=image, vae=vae)
    sigmas, = execute(comfy, "BasicScheduler", model=model, scheduler="simple", steps=6, denoise=1.0)
    latent_format = model.model.latent_format
    preview = pack.ssdiff_core.pixel_space.LinearRGBMap(latent_format.latent_rgb_factors,
                                                        latent_format.latent_rgb_factors_bias)
    distances = []
    for scale in (0.0, 1.0):
        settings = {**SELECTIVE_SETTINGS, "scale": scale, "reference_weight": 0.0, "colour_weight": 0.0,
                    "latent_guidance": "latent_rgb_approximation"}
        sampler, = execute(comfy, "SSDiffSelectiveSampler", image=image, coarse_restoration=image,
                           pseudo_reference=image, **settings)
        output, _ = execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=3, cfg=1.0,
                            positive=positive, negative=negative, sampler=sampler, sigmas=sigmas, latent_image=latent)
        samples = latent_format.process_in(output["samples"])
        shown = preview.prepare(samples)(samples)
        distances.append((shown - (image.movedim(-1, 1) * 2 - 1)).square().mean())
    assert distances[1] < distances[0]


def test_cfg_and_conditioning_reach_the_model(comfy, sd):
    image = face()
    base = restore(comfy, sd, image)
    assert not torch.equal(base, restore(comfy, sd, image, cfg_override=4.0))


def test_a_lora_changes_the_result(comfy, sd, models_root):
    import folder_paths
    loras = models_root / "loras"
    loras.mkdir(exist_ok=True)
    save_unet_lora(sd[0], loras / "tiny_style_lora.safetensors")
    folder_paths.add_model_folder_path("loras", str(loras), is_default=True)
    styled, = execute(comfy, "LoraLoaderModelOnly", model=sd[0], lora_name="tiny_style_lora.safetensors",
                      strength_model=1.0)
    image = face()
    plain = restore(comfy, sd, image)
    with_lora = restore(comfy, sd, image, model=styled)
    assert not torch.allclose(plain, with_lora, atol=1e-3)
    assert torch.equal(plain, restore(comfy, sd, image))


def test_sampler_custom_with_cfg_and_the_ssdiff_sampler(comfy, sd):
    model, vae, positive, negative = sd
    image = face()
    sampler, = execute(comfy, "SSDiffSelectiveSampler", image=image, coarse_restoration=image, pseudo_reference=image,
                       vae=vae, **{**SELECTIVE_SETTINGS, "base_sampler": "euler_ancestral"})
    sigmas, = execute(comfy, "BasicScheduler", model=model, scheduler="normal", steps=4, denoise=1.0)
    latent, = execute(comfy, "VAEEncode", pixels=image, vae=vae)
    output, _ = execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=3, cfg=3.0,
                        positive=positive, negative=negative, sampler=sampler, sigmas=sigmas, latent_image=latent)
    decoded, = execute(comfy, "VAEDecode", samples=output, vae=vae)
    assert decoded.shape == image.shape and torch.isfinite(decoded).all()


def test_a_latent_model_without_vae_or_conditioning_is_refused_clearly(comfy, sd):
    model, vae, positive, negative = sd
    common = dict(model=model, image=face(), coarse_restoration=face(), pseudo_reference=face(),
                  **SELECTIVE_SETTINGS, **ONE_STOP_SETTINGS, seed=1, steps=2)
    with pytest.raises(ValueError, match="needs its VAE"):
        execute(comfy, "SSDiffSampler", positive=positive, negative=negative, **common)
    with pytest.raises(ValueError, match="positive and negative"):
        execute(comfy, "SSDiffSampler", vae=vae, **common)
