"""The face DDPM and a Stable Diffusion-type model mixed up with each other's VAE or latents:
refused naming the mismatch and the fix, before a network fails on a tensor size. The SD model
is RobustnessProbeTinyStableDiffusion's (ComfyUI's SD1.5 classes, tiny and random)."""
from __future__ import annotations

from node_prompts import node_prompt
from robustness_support import assert_still_serves, execution_error
from stage_settings import PSEUDO_REFERENCE_SETTINGS


def guided_sampler_custom(prompt: dict, model: list, latent: list, vae: list | None = None) -> dict:
    """SamplerCustom with SSDiff Pseudo Reference Sampler on `model`, from `latent`."""
    prompt["sd"] = {"class_type": "RobustnessProbeTinyStableDiffusion", "inputs": {}}
    prompt["empty_conditioning"] = {"class_type": "SSDiffUnconditional", "inputs": {}}
    prompt["guided"] = {"class_type": "SSDiffPseudoReferenceSampler",
                        "inputs": {"image": ["photo", 0], **PSEUDO_REFERENCE_SETTINGS,
                                   **({"vae": vae} if vae else {})}}
    prompt["sigmas"] = {"class_type": "BasicScheduler",
                        "inputs": {"model": model, "scheduler": "normal", "steps": 2, "denoise": 1.0}}
    prompt["sample"] = {"class_type": "SamplerCustom",
                        "inputs": {"model": model, "add_noise": True, "noise_seed": 1, "cfg": 1.0,
                                   "positive": ["empty_conditioning", 0], "negative": ["empty_conditioning", 0],
                                   "sampler": ["guided", 0], "sigmas": ["sigmas", 0], "latent_image": latent}}
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["sample", 0]}}
    return prompt


def encoded(prompt: dict, vae: list) -> list:
    prompt["encoded"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["photo", 0], "vae": vae}}
    return ["encoded", 0]


def test_the_face_ddpm_on_a_latent_an_sd_vae_made_is_refused(server):
    prompt = node_prompt(server, "SSDiffPseudoReference")
    prompt = guided_sampler_custom(prompt, ["ddpm", 0], encoded(prompt, ["sd", 1]))
    text = execution_error(server, prompt)
    assert "the face DDPM samples pixels (3 channels), but this latent has 4 channels" in text, text
    assert "'pixel VAE' output of SSDiff Face Diffusion Loader" in text
    assert_still_serves(server)


def test_an_sd_model_given_the_face_ddpms_pixel_vae_is_refused(server):
    prompt = node_prompt(server, "SSDiffPseudoReference")
    prompt["sd"] = {"class_type": "RobustnessProbeTinyStableDiffusion", "inputs": {}}
    prompt["n"]["inputs"].update(model=["sd", 0], vae=["ddpm", 1])
    text = execution_error(server, prompt)
    assert "vae makes 3-channel latents (the face DDPM's pixel VAE), but this MODEL samples 4-channel ones" in text
    assert "connect the VAE of the model's own checkpoint" in text
    assert_still_serves(server)


def test_an_sd_model_on_a_latent_the_pixel_vae_made_is_refused(server):
    prompt = node_prompt(server, "SSDiffPseudoReference")
    prompt = guided_sampler_custom(prompt, ["sd", 0], encoded(prompt, ["ddpm", 1]), vae=["sd", 1])
    text = execution_error(server, prompt)
    assert "this MODEL samples 4-channel latents, but this latent has 3 channels" in text, text
    assert "encode the image with the VAE of the model's own checkpoint" in text
    assert_still_serves(server)
