"""CodeFormer as SSDiff calls it (`restorer(y, w=0.5)`, CodeFormer's default adain=False) and as
spandrel's forward runs it (adain always on), each against CodeFormer's own formula on a tiny
network at the published 512 px, where spandrel's forward finds its fusion blocks by size as the
released code does. (Each pass takes seconds on a CPU.)"""
from __future__ import annotations

import sys

import pytest
import torch

from harness.tiny_models import tiny_codeformer
from comfyui_ssdiff.models.face_restorers import FaceRestorer


@pytest.fixture(scope="module")
def network():
    return tiny_codeformer(seed=3)


@pytest.fixture(scope="module")
def degraded():
    # A sepia-toned input: far from the codebook's statistics, where AdaIN changes the most.
    generator = torch.Generator().manual_seed(4)
    tone = torch.tensor([0.35, 0.1, -0.2]).view(1, 3, 1, 1)
    return (tone + 0.3 * torch.rand(1, 3, 512, 512, generator=generator)).clamp(-1, 1)


@pytest.fixture(scope="module")
def codeformers_own(network, degraded) -> dict[bool, torch.Tensor]:
    """CodeFormer's formula at w = 0.5 for adain off and on: spandrel's forward, which is the
    released one with adain fixed on; for adain off its AdaIN step is made the identity on the
    content, which is the released `adain=False` branch."""
    module = sys.modules[type(network).__module__]
    original = module.adaptive_instance_normalization
    outputs = {}
    with torch.no_grad():
        outputs[True] = network(degraded, weight=0.5)[0].clamp(-1, 1)
        module.adaptive_instance_normalization = lambda content, style: content
        try:
            outputs[False] = network(degraded, weight=0.5)[0].clamp(-1, 1)
        finally:
            module.adaptive_instance_normalization = original
    return outputs


def test_the_restorer_by_default_is_the_released_call(network, degraded, codeformers_own):
    assert torch.equal(FaceRestorer(network, "CodeFormer")(degraded), codeformers_own[False])


def test_the_restorer_with_adain_is_spandrels_forward(network, degraded, codeformers_own):
    assert torch.equal(FaceRestorer(network, "CodeFormer")(degraded, adain=True), codeformers_own[True])


def test_adain_carries_the_inputs_tone(codeformers_own):
    assert (codeformers_own[True] - codeformers_own[False]).abs().max() > 0.1
