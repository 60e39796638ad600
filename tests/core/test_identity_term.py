"""The identity term (issue 30): its loss is the cosine distance of the x0 estimate's embedding to
the references' mean identity, its gradient is exact (finite differences), it reaches the x0
estimate through the re-alignment onto ArcFace's template (which samples as OpenCV does), and a
stage given it adds exactly its gradient."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from comfyui_ssdiff.priors.identity import ARCFACE_SIZE, arcface_affine, arcface_input, warp
from comfyui_ssdiff.ssdiff_core.guidance import SelectiveGuidance
from comfyui_ssdiff.ssdiff_core.identity import IdentityTerm, identity_loss, mean_identity
from comfyui_ssdiff.ssdiff_core.masks import selective_masks
from comfyui_ssdiff.ssdiff_core.schedule import StepTime

WHEN = StepTime(500.0, 1000)


class SmallEmbedding(torch.nn.Module):
    """A stand-in recognition network: 112 px faces -> 16-d embeddings (smooth: finite differences hold)."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 5, stride=4)
        self.linear = torch.nn.Linear(8 * 27 * 27, 16)

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return self.linear(torch.tanh(self.conv(faces)).flatten(1))


def embedder(network: torch.nn.Module):
    return lambda faces: F.normalize(network(arcface_input(faces)), dim=1)


def test_the_warp_onto_arcfaces_template_samples_as_opencv_does():
    face = np.random.default_rng(0).random((143, 143, 3), dtype=np.float32)
    affine = arcface_affine(143)
    expected = cv2.warpAffine(face, affine, (ARCFACE_SIZE, ARCFACE_SIZE), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    got = warp(torch.from_numpy(face).permute(2, 0, 1)[None], affine, ARCFACE_SIZE)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(got, expected, atol=1e-4)


def test_the_reference_identity_is_the_mean_direction_and_the_loss_a_cosine_distance():
    embeddings = torch.tensor([[3.0, 0.0], [0.0, 0.5]])
    reference = mean_identity(embeddings)
    torch.testing.assert_close(reference, torch.tensor([1.0, 1.0]) / 2 ** 0.5)
    assert float(identity_loss(torch.tensor([[1.0, 1.0]]), reference)) == pytest.approx(0.0, abs=1e-6)
    assert float(identity_loss(torch.tensor([[1.0, -1.0], [-1.0, -1.0]]), reference)) == pytest.approx(1.0 + 2.0)


def test_the_terms_gradient_agrees_with_finite_differences():
    torch.manual_seed(0)
    network = SmallEmbedding().double()
    references = torch.rand(2, 3, 64, 64, dtype=torch.float64) * 2 - 1
    term = IdentityTerm(embedder(network), mean_identity(embedder(network)(references)), (64, 64), weight=3.0)
    x0 = (torch.rand(1, 3, 64, 64, dtype=torch.float64) * 2 - 1).requires_grad_(True)
    gradient, = torch.autograd.grad(term.loss(x0, WHEN), x0)
    assert gradient.abs().sum() > 0
    for seed in range(3):
        direction = torch.randn(x0.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        epsilon = 1e-5
        with torch.no_grad():
            numeric = (term.loss(x0 + epsilon * direction, WHEN) - term.loss(x0 - epsilon * direction, WHEN)) / (2 * epsilon)
        assert float((gradient * direction).sum()) == pytest.approx(float(numeric), rel=1e-5, abs=1e-9)


def test_a_stage_adds_the_terms_gradient_on_the_face_inside_the_padded_sample():
    """The face is the image's own size; the sample may be padded to the model's multiple: the term
    sees the face alone, and its gradient is zero on the padding."""
    torch.manual_seed(1)
    network = SmallEmbedding()
    reference = mean_identity(torch.randn(2, 16))
    sample = torch.rand(1, 3, 64, 72) * 2 - 1
    scratch = torch.zeros(1, 1, 64, 72)

    def stage(terms):
        return SelectiveGuidance(sample, sample.flip(-1), selective_masks(scratch, None), terms=terms)

    term = IdentityTerm(embedder(network), reference, (60, 60), weight=50.0)
    plain = stage(()).start(sample).gradient(sample, WHEN)
    guided = stage((term,)).start(sample).gradient(sample, WHEN)
    face = sample[..., :60, :60].clone().requires_grad_(True)
    expected, = torch.autograd.grad(term.loss(face, WHEN), face)
    difference = guided - plain
    torch.testing.assert_close(difference[..., :60, :60], expected, rtol=1e-4, atol=1e-6)
    assert difference[..., 60:, :].abs().max() == 0 and difference[..., :, 60:].abs().max() == 0
    off = stage((IdentityTerm(embedder(network), reference, (60, 60), weight=0.0),)).start(sample)
    assert torch.equal(off.gradient(sample, WHEN), plain)
