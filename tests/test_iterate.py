"""SSDiff Iterate in the real host with the tiny face DDPM: k rounds equal k chained runs of SSDiff
Sampler, a round that changes little stops the loop, and the parser's regions give the drift."""
from __future__ import annotations

import json

import pytest
import torch

from node_runner import execute
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
