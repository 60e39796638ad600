"""One more guidance term is one declaration and one loss (issue 27; the hook issue 30's identity
term takes): a GuidanceTerm dataclass declares its weight with `setting()` and writes its loss;
a stage given it adds exactly that loss's gradient, under the stage's own rules; without terms a
stage is as it was."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from comfyui_ssdiff.ssdiff_core.guidance import GuidanceTerm, PseudoReferenceGuidance, SelectiveGuidance
from comfyui_ssdiff.ssdiff_core.masks import selective_masks
from comfyui_ssdiff.ssdiff_core.schedule import StepTime
from comfyui_ssdiff.ssdiff_core.settings import declared, setting


@dataclass(frozen=True)
class Brightness(GuidanceTerm):
    """A dummy term: pulls every pixel brighter."""
    weight: float = setting(0.5, 0.0, 10.0, "pulls the face brighter", 0.1)

    def loss(self, x0: torch.Tensor, when: StepTime) -> torch.Tensor | None:
        return None if self.weight == 0 else -self.weight * x0.sum()


def stages(terms: tuple[GuidanceTerm, ...]) -> dict:
    generator = torch.Generator().manual_seed(7)
    image = torch.rand(1, 3, 16, 16, generator=generator) * 2 - 1
    scratch = torch.zeros(1, 1, 16, 16)
    scratch[..., 4:6, :] = 1
    return {"pseudo_reference": PseudoReferenceGuidance(image, scratch, terms=terms),
            "selective": SelectiveGuidance(image, image.flip(-1), selective_masks(scratch, None), terms=terms)}


@pytest.mark.parametrize("stage", ["pseudo_reference", "selective"])
def test_a_declared_term_adds_exactly_its_own_gradient_and_none_changes_nothing(stage):
    x0 = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(3)) * 2 - 1
    when = StepTime(700.0, 1000)
    plain = stages(())[stage].start(x0).gradient(x0, when)
    with_term = stages((Brightness(2.0),))[stage].start(x0).gradient(x0, when)
    off = stages((Brightness(0.0),))[stage].start(x0).gradient(x0, when)
    expected = -2.0 * torch.ones_like(x0)
    if stage == "pseudo_reference":  # stage 1 zeroes its whole gradient on the scratches
        expected[..., 4:6, :] = 0
    torch.testing.assert_close(with_term - plain, expected)
    assert torch.equal(off, plain)


def test_the_terms_weight_is_a_setting_a_node_can_offer():
    weight, = declared(Brightness)
    assert (weight.name, weight.default, weight.minimum, weight.maximum) == ("weight", 0.5, 0.0, 10.0)
