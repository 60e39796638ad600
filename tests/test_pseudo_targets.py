"""SSDiff Pseudo Targets and SSDiff Pseudo Target Sampler in the real host, with the tiny face
DDPM: any size, batches as separate seeds, the released start, and the SAMPLER in SamplerCustom
giving what the one-stop node gives."""
from __future__ import annotations

import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.ssdiff_core.pseudo_targets import partial_grid
from comfyui_ssdiff.ssdiff_core.schedule import respaced_sigmas

SETTINGS = {"constraint_end": 0.36, "filter_factor": 8, "start": 0.6, "reference_compat": False}


@pytest.fixture(scope="module")
def face_ddpm(comfy):
    return execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")


def restorations(batch: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(seed))


def targets(comfy, model, coarse: torch.Tensor, seed: int = 5, steps: int = 10, **overrides) -> torch.Tensor:
    target, = execute(comfy, "SSDiffPseudoTargets", model=model, coarse_restoration=coarse, seed=seed, steps=steps,
                      **{**SETTINGS, **overrides})
    return target


def test_any_size_and_a_batch_gives_what_separate_runs_with_consecutive_seeds_give(comfy, face_ddpm):
    model, _ = face_ddpm
    coarse = restorations(2, 37, 29)
    batch = targets(comfy, model, coarse)
    assert batch.shape == (2, 37, 29, 3) and torch.isfinite(batch).all() and 0 <= batch.min() <= batch.max() <= 1
    assert torch.allclose(batch[1:], targets(comfy, model, coarse[1:], seed=6), atol=1e-5)
    assert not torch.allclose(batch[0], batch[1])


def test_the_low_frequencies_follow_the_restoration_and_the_released_start_differs(comfy, face_ddpm):
    model, _ = face_ddpm
    coarse = restorations(1, 32, 32, seed=1)
    free = targets(comfy, model, coarse, constraint_end=1.0)  # never constrained
    held = targets(comfy, model, coarse, constraint_end=0.0)
    assert (held - coarse).abs().mean() < (free - coarse).abs().mean()
    assert not torch.equal(targets(comfy, model, coarse, reference_compat=True), targets(comfy, model, coarse))


def test_the_sampler_in_sampler_custom_gives_what_the_one_stop_node_gives(comfy, face_ddpm):
    model, vae = face_ddpm
    coarse = restorations(1, 32, 32, seed=2)
    conditioning, = execute(comfy, "SSDiffUnconditional")
    latent, = execute(comfy, "VAEEncode", pixels=coarse, vae=vae)
    discrete = model.model.model_sampling.sigmas.double()
    sigmas, _, _ = partial_grid(respaced_sigmas(12, discrete), discrete, SETTINGS["start"])
    sampler, = execute(comfy, "SSDiffPseudoTargetSampler", coarse_restoration=coarse,
                       constraint_end=SETTINGS["constraint_end"], filter_factor=SETTINGS["filter_factor"])
    output, _ = execute(comfy, "SamplerCustom", model=model, add_noise=True, noise_seed=9, cfg=1.0,
                        positive=conditioning, negative=conditioning, sampler=sampler, sigmas=sigmas,
                        latent_image=latent)
    decoded, = execute(comfy, "VAEDecode", samples=output, vae=vae)
    assert torch.allclose(decoded, targets(comfy, model, coarse, seed=9, steps=12), atol=1e-5)
