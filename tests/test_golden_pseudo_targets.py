"""The pseudo-target sampler reproduces single steps, the filter and the schedule recorded from
Kuai et al.'s released sampler (tests/fixtures/golden_pseudo_targets, see its README), through the
pack's own loader, ComfyUI's MODEL and the pack's sampler."""
from __future__ import annotations

import hashlib
import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import GOLDEN, REPO
from comfyui_ssdiff.ssdiff_core import pseudo_targets
from comfyui_ssdiff.ssdiff_core.lowpass import low_frequencies, resize, resize_matrix
from comfyui_ssdiff.ssdiff_core.sampler import sample_ssdiff
from comfyui_ssdiff.ssdiff_core.schedule import respaced_timesteps

FIXTURES = REPO / "tests" / "fixtures" / "golden_pseudo_targets"
MANIFEST = json.loads((FIXTURES / "manifest.json").read_text())
INPUTS = load_file(str(FIXTURES / "inputs.safetensors"))
SCHEDULE = load_file(str(FIXTURES / "schedule.safetensors"))
STEPS = load_file(str(FIXTURES / "single_step.safetensors"))
FILTER = load_file(str(FIXTURES / "filter.safetensors"))
TOLERANCES = MANIFEST["tolerances"]["single_step_atol"]
RESPACED_SIGMAS = ((1 - SCHEDULE["alphas_cumprod"]) / SCHEDULE["alphas_cumprod"]).sqrt()
"""The released sampler's 250 respaced noise levels, float64."""
SETTINGS = MANIFEST["reference_settings"]["parsed_main_run"]
CONSTRAINT_END = SETTINGS["reg_end_timesteps"] / 250


class QueuedNoise:
    """The recorded draws, in the order the sampler makes them: the step's z, then the
    constraint's c."""

    def __init__(self, *draws: torch.Tensor):
        self.draws = list(draws)

    def draw(self, device="cpu", dtype=torch.float32) -> torch.Tensor:
        return self.draws.pop(0).to(device=device, dtype=dtype)


def test_the_golden_network_is_the_ssdiff_golden_network():
    digest = hashlib.sha256((GOLDEN / "tiny_unet.pth").read_bytes()).hexdigest()
    assert digest == MANIFEST["model"]["file_sha256"]


def test_the_paper_settings_are_the_released_scripts():
    assert (SETTINGS["started_timesteps"], SETTINGS["reg_end_timesteps"], SETTINGS["down_N"]) == (150, 90, 8)
    assert pseudo_targets.START * 250 == 150 and pseudo_targets.CONSTRAINT_END * 250 == 90
    assert pseudo_targets.FILTER_FACTOR == 8


def test_the_respaced_schedule_is_the_released_samplers():
    assert respaced_timesteps(250)[::-1] == SCHEDULE["timestep_map"].tolist()
    abar = SCHEDULE["alphas_cumprod_1000"][SCHEDULE["timestep_map"]]
    assert torch.allclose(abar, SCHEDULE["alphas_cumprod"], rtol=1e-12)


@pytest.mark.parametrize("matrix, sizes", [("D_64_f8", (64, 8)), ("U_8_f8", (8, 64)), ("D_512_f8", (512, 64)),
                                           ("U_512_f8", (64, 512)), ("D_512_f16", (512, 32)),
                                           ("U_512_f16", (32, 512))])
def test_the_filter_matrices_are_the_released_resizers(matrix, sizes):
    assert torch.equal(resize_matrix(*sizes).float(), FILTER[matrix])


def test_the_filter_on_images_is_the_released_resizers():
    tolerance = MANIFEST["tolerances"]["filter_atol"]
    assert (resize(FILTER["x"], 8, 8) - FILTER["down_x"]).abs().max() <= tolerance
    assert (low_frequencies(FILTER["x"], 8) - FILTER["up_down_x"]).abs().max() <= tolerance
    assert (resize(FILTER["y8"], 64, 64) - FILTER["up_y8"]).abs().max() <= tolerance
    assert (low_frequencies(FILTER["ref_img"], 8) - FILTER["up_down_ref"]).abs().max() <= tolerance


def test_the_released_start_is_the_restoration_noised_one_level_above_the_first_step():
    start = pseudo_targets.start_sample(INPUTS["ref_img"], INPUTS["start_noise"], float(RESPACED_SIGMAS[149]),
                                        float(RESPACED_SIGMAS[150]))
    expected = INPUTS["x_N"] * (1 + RESPACED_SIGMAS[149] ** 2).sqrt()
    assert (start - expected).abs().max() <= 1e-5


@pytest.fixture(scope="module")
def golden_model(comfy):
    model, _ = comfy.NODE_CLASS_MAPPINGS["SSDiffFaceDiffusionLoader"].execute(
        ckpt_name="golden_tiny_unet.pth", weight_dtype="fp32").result
    return model


def run_one_step(model, case: dict[str, torch.Tensor], constraint_end: float) -> dict[str, torch.Tensor]:
    t = int(case["t"])
    sigma = RESPACED_SIGMAS[t].float()  # ComfyUI hands samplers float32 sigmas
    sigma_prev = RESPACED_SIGMAS[t - 1].float() if t > 0 else torch.tensor(0.0)
    records = []

    def apply(x, sigma, model_options=None, seed=None, **_):
        return model.model.apply_model(x, sigma, transformer_options=model_options["transformer_options"])

    guidance = pseudo_targets.PseudoTargetGuidance(INPUTS["ref_img"], constraint_end, SETTINGS["down_N"])
    noise = QueuedNoise(case["z"], *([case["c"]] if "c" in case else []))
    with torch.inference_mode():
        sample_ssdiff(apply, case["x_t"] * (1 + sigma.double() ** 2).sqrt().float(), torch.stack([sigma, sigma_prev]),
                      {"model_options": {}, "seed": 0}, callback=lambda info: records.append(info["ssdiff"]),
                      guidance=guidance, discrete_sigmas=RESPACED_SIGMAS, step_noise=noise)
    record, = records
    return {"eps": record.model_output[:, :3], "var_values": record.model_output[:, 3:], "x0h": record.x0h,
            "mean": record.mean, "log_variance": record.log_variance, "x_sample": record.x_unguided,
            "x_prev": record.x_prev}


def case_tensors(name: str) -> dict[str, torch.Tensor]:
    return {key[len(name) + 1:]: value for key, value in STEPS.items() if key.startswith(f"{name}/")}


CASES = [(name, CONSTRAINT_END) for name in MANIFEST["single_step"]["cases_main"]] + \
        [(f"regend0/{name}", 0.0) for name in MANIFEST["single_step"]["cases_regend0"]]


@pytest.mark.parametrize("name, constraint_end", CASES, ids=[name for name, _ in CASES])
def test_single_step_matches_the_released_sampler(golden_model, name, constraint_end):
    expected = case_tensors(name)
    result = run_one_step(golden_model, expected, constraint_end)
    for key, value in result.items():
        difference = (value.float() - expected[key]).abs().max().item()
        assert difference <= TOLERANCES[name][key], f"{name} {key}: max |diff| {difference:.3g}"
