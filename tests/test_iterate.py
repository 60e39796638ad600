"""SSDiff Iterate in the real host with the tiny face DDPM: k rounds equal k chained runs of SSDiff
Sampler, a round that changes little stops the loop, and the parser's regions and an ArcFace
network (loaded from its file) give the drift."""
from __future__ import annotations

import json

import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.priors.alignment import FFHQ_TEMPLATE_512
from comfyui_ssdiff.priors.identity import ARCFACE_TEMPLATE_112, arcface_affine
from comfyui_ssdiff.ssdiff_core.iteration import embedding_angle, iterate
from stage_settings import ONE_STOP_SETTINGS, SELECTIVE_SETTINGS


@pytest.fixture(scope="module")
def face(comfy):
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    generator = torch.Generator().manual_seed(11)
    image = torch.rand(1, 32, 32, 3, generator=generator)
    return model, image, torch.rand(1, 32, 32, 3, generator=generator)


def stage_inputs(model, image, coarse, pseudo_reference) -> dict:
    return {"model": model, "image": image, "coarse_restoration": coarse, "pseudo_reference": pseudo_reference,
            **SELECTIVE_SETTINGS, **ONE_STOP_SETTINGS, "seed": 2, "steps": 3}


def test_k_rounds_equal_k_chained_runs_and_report_each_rounds_change(comfy, face):
    model, image, coarse = face
    restored, every_round, plot, changes = execute(comfy, "SSDiffIterate", rounds=3, min_change=0.0,
                                                   **stage_inputs(model, image, coarse, image))
    chained, outputs = coarse, []
    for _ in range(3):
        chained, = execute(comfy, "SSDiffSampler", **stage_inputs(model, image, chained, image))
        outputs.append(chained)
    assert every_round.shape == (3, 32, 32, 3) and torch.equal(restored, every_round[-1:])
    for got, expected in zip(every_round, outputs):
        assert torch.allclose(got, expected[0], atol=1e-6)
    report = json.loads(changes)
    expected_changes = [float((after - before).abs().mean()) for before, after in zip([coarse, *outputs], outputs)]
    assert report["changes"] == pytest.approx(expected_changes, abs=1e-6) and report["region_drifts"] == []
    assert plot.shape[0] == 1 and plot.shape[-1] == 3


def test_a_round_that_changes_less_than_the_threshold_ends_the_loop_and_the_parser_gives_the_drift(comfy, face):
    model, image, coarse = face
    parser, = execute(comfy, "SSDiffFaceParserLoader", model_name="parsing_parsenet.pth")
    restored, every_round, _, changes = execute(comfy, "SSDiffIterate", rounds=5, min_change=1.0, parser=parser,
                                                **stage_inputs(model, image, coarse, image))
    report = json.loads(changes)
    assert every_round.shape[0] == 1 and len(report["changes"]) == 1
    assert len(report["region_drifts"]) == 1 and 0.0 <= report["region_drifts"][0] <= 1.0


def test_the_face_recognition_loader_and_the_identity_drift_between_rounds(comfy, face):
    model, image, coarse = face
    recognition, = execute(comfy, "SSDiffFaceRecognitionLoader", model_name="recognition_arcface_ir_se50.pth")
    _, every_round, plot, changes = execute(comfy, "SSDiffIterate", rounds=2, min_change=0.0,
                                            face_recognition=recognition, **stage_inputs(model, image, coarse, image))
    report = json.loads(changes)
    assert every_round.shape[0] == 2 and len(report["identity_angles"]) == 2
    assert report["identity_angles"][0] == pytest.approx(report["identity_angles_from_start"][0])
    assert all(0.0 < angle <= 180.0 for angle in report["identity_angles"] + report["identity_angles_from_start"])
    assert plot.shape[0] == 1 and plot.shape[-1] == 3


def test_a_missing_face_recognition_file_is_named_with_the_file_to_get(comfy):
    message = comfy.NODE_CLASS_MAPPINGS["SSDiffFaceRecognitionLoader"].validate_inputs(model_name="missing.pth")
    assert "missing.pth" in message and "recognition_arcface_ir_se50.pth" in message


def test_faces_are_realigned_onto_arcfaces_template_and_angles_are_in_degrees():
    affine = arcface_affine(512)
    mapped = FFHQ_TEMPLATE_512 @ affine[:, :2].T + affine[:, 2]
    distances = ((mapped - ARCFACE_TEMPLATE_112) ** 2).sum(axis=1) ** 0.5
    assert distances.max() < 2.5 and distances.mean() < 2.0
    unit = torch.eye(3)[:2]
    assert embedding_angle(unit, unit) == pytest.approx(0.0, abs=1e-4)
    assert embedding_angle(unit, unit.flip(0)) == pytest.approx(90.0)
    result = iterate(lambda x: x * 0.5, torch.ones(1, 3, 4, 4), 3, embed=lambda x: torch.nn.functional.normalize(
        torch.stack([x.mean(dim=(1, 2, 3)), torch.ones(1)], dim=1), dim=1))
    assert result.identity_angles[0] == pytest.approx(45.0 - 26.565051, abs=1e-3)
    assert result.identity_angles_from_start[-1] == pytest.approx(sum(result.identity_angles), abs=1e-3)
