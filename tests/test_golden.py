"""reference_compat reproduces single guided steps recorded from the authors' released code
(tests/fixtures/golden, see its README), through the pack's own loader and ComfyUI's MODEL."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from conftest import GOLDEN
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance
from comfyui_ssdiff.ssdiff_core.masks import selective_masks
from comfyui_ssdiff.ssdiff_core.sampler import sample_ssdiff
from comfyui_ssdiff.ssdiff_core.variant import RELEASED_CODE

MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
INPUTS = load_file(str(GOLDEN / "inputs.safetensors"))
STAGE1 = load_file(str(GOLDEN / "stage1_single_step.safetensors"))
STAGE2 = load_file(str(GOLDEN / "stage2_single_step.safetensors"))
COMPARED = ("eps", "var_values", "x0h", "mean", "log_variance", "g", "x_prev")


class RecordedNoise:
    def __init__(self, z: torch.Tensor):
        self.z = z

    def draw(self, device="cpu", dtype=torch.float32) -> torch.Tensor:
        return self.z.to(device=device, dtype=dtype)


@pytest.fixture(scope="module")
def golden_model(comfy, pack):
    model, _ = comfy.NODE_CLASS_MAPPINGS["SSDiffFaceDiffusionLoader"].execute(
        ckpt_name="golden_tiny_unet.pth", weight_dtype="fp32").result
    model.schedule_sigmas = pack.comfy_adapter.face_model.schedule_sigmas(model.model)
    return model


def test_host_schedule_is_the_reference_schedule(golden_model):
    alphas_cumprod = INPUTS["alphas_cumprod"]
    expected = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
    assert golden_model.schedule_sigmas.dtype == torch.float64
    assert torch.allclose(golden_model.schedule_sigmas, expected, rtol=1e-12)


def run_one_step(model, guidance, case: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    discrete_sigmas = model.schedule_sigmas
    t = int(case["t"])
    # ComfyUI hands samplers float32 sigmas; the sampler snaps them back onto the schedule.
    sigma = discrete_sigmas[t].float()
    sigma_prev = discrete_sigmas[t - 1].float() if t > 0 else torch.tensor(0.0)
    records = []

    def apply(x, sigma, model_options=None, seed=None, **_):
        return model.model.apply_model(x, sigma, transformer_options=model_options["transformer_options"])

    with torch.inference_mode():
        sample_ssdiff(apply, case["x_t"] * (1 + sigma ** 2).sqrt(), torch.stack([sigma, sigma_prev]),
                      {"model_options": {}, "seed": 0}, callback=lambda info: records.append(info["ssdiff"]),
                      guidance=guidance, discrete_sigmas=discrete_sigmas, step_noise=RecordedNoise(case["z"]))
    record, = records
    return {"eps": record.model_output[:, :3], "var_values": record.model_output[:, 3:],
            "x0h": record.x0h, "mean": record.mean, "log_variance": record.log_variance,
            "g": record.gradient, "x_prev": record.x_prev}


def case_tensors(recorded: dict[str, torch.Tensor], name: str) -> dict[str, torch.Tensor]:
    prefix = f"{name}/"
    return {key[len(prefix):]: value for key, value in recorded.items() if key.startswith(prefix)}


def assert_matches(result, expected, tolerances, name):
    for key in COMPARED:
        difference = (result[key].float() - expected[key]).abs().max().item()
        assert difference <= tolerances[key], f"{name} {key}: max |diff| {difference:.3g} > {tolerances[key]}"


@pytest.mark.parametrize("name", list(MANIFEST["stage1_single_step"]["cases"]))
def test_stage1_single_step_matches_released_code(golden_model, name):
    guidance = PseudoReferenceGuidance(degraded=INPUTS["y"], scratch=INPUTS["mask_raw"][:, :1],
                                       scale=MANIFEST["stage1_single_step"]["scale"], variant=RELEASED_CODE)
    result = run_one_step(golden_model, guidance, case_tensors(STAGE1, name))
    assert_matches(result, case_tensors(STAGE1, name),
                   MANIFEST["tolerances"]["single_step_atol"]["stage1"][name], name)


def golden_masks():
    return selective_masks(INPUTS["mask_raw"][:, :1], INPUTS["labels"])


def test_stage2_masks_match_released_code():
    masks = golden_masks()
    assert torch.equal(masks.damage.expand(-1, 3, -1, -1).float(), STAGE2["masks/M_o"])
    assert torch.equal(masks.reference.expand(-1, 3, -1, -1).float(), STAGE2["masks/M_n"])
    assert torch.equal(masks.colour_free.expand(-1, 3, -1, -1).float(), STAGE2["masks/M_s"])


@pytest.mark.parametrize("name", list(MANIFEST["stage2_single_step"]["cases"]))
def test_stage2_single_step_matches_released_code(golden_model, name):
    t1_index = MANIFEST["stage2_single_step"]["T1"]
    case = case_tensors(STAGE2, name)
    guidance = SelectiveGuidance(
        coarse=INPUTS["R"], pseudo_reference=INPUTS["P"], masks=golden_masks(),
        colour_target=INPUTS["C"] if int(case["t"]) < t1_index else None,
        t1=t1_index / 1000, scale=MANIFEST["stage2_single_step"]["scale"], variant=RELEASED_CODE)
    result = run_one_step(golden_model, guidance, case)
    assert_matches(result, case, MANIFEST["tolerances"]["single_step_atol"]["stage2"][name], name)
