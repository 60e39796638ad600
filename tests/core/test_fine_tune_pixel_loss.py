"""The fine-tune's pixel path (GFPGAN and other restorers but CodeFormer) on spandrel's GFPGANv1Clean
at 64 px and a quarter of its widths: the L1 loss falls, a held-out face comes out closer to its
target, the StyleGAN decoder stays frozen, the rest trains, and the restorer given is left as it
was; with LPIPS (random VGG16 weights) each step's loss is L1 + weight x the lpips package's own
distance."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from harness.tiny_models import vgg16_features
from comfyui_ssdiff.models import perceptual_loss
from comfyui_ssdiff.models.face_restorers import FaceRestorer
from comfyui_ssdiff.training.fine_tune import FineTuneSettings, fine_tune
from comfyui_ssdiff.training.losses import PerceptualLoss


def tiny_gfpgan() -> FaceRestorer:
    from spandrel.architectures.GFPGAN.__arch.gfpganv1_clean_arch import GFPGANv1Clean

    torch.manual_seed(0)
    return FaceRestorer(GFPGANv1Clean(out_size=64, num_style_feat=64, channel_multiplier=1, narrow=0.25).eval(),
                        "GFPGAN")


def smooth_pairs(count: int) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    images = F.interpolate(torch.rand(count, 3, 8, 8, generator=generator), size=64, mode="bicubic").clamp(0, 1)
    targets = images * 2 - 1
    return F.avg_pool2d(targets, 5, 1, 2), targets


def held_out_l1(restorer: FaceRestorer, degraded: torch.Tensor, targets: torch.Tensor) -> float:
    torch.manual_seed(5)  # the StyleGAN decoder's noise, the same for both restorers
    return float(F.l1_loss(restorer(degraded), targets))


def test_the_pixel_loss_falls_held_out_faces_come_closer_the_decoder_is_frozen_and_the_original_is_untouched():
    restorer = tiny_gfpgan()
    original = {key: value.clone() for key, value in restorer.network.state_dict().items()}
    degraded, targets = smooth_pairs(3)
    result = fine_tune(restorer, degraded[:2], targets[:2], FineTuneSettings(12, learning_rate=2e-3, batch_size=2,
                                                                             ema_decay=0.0))
    assert sum(result.losses[-3:]) < sum(result.losses[:3]), result.losses
    before, after = (held_out_l1(network, degraded[2:], targets[2:]) for network in (restorer, result.restorer))
    assert after < 0.8 * before, (before, after)
    trained = result.restorer.network.state_dict()
    changed = {key.split(".", 1)[0] for key in original if not torch.equal(original[key], trained[key])}
    assert "stylegan_decoder" not in changed and {"conv_body_first", "final_linear"} <= changed
    assert all(torch.equal(value, original[key]) for key, value in restorer.network.state_dict().items())


@pytest.mark.filterwarnings("ignore::UserWarning:torchvision")
def test_with_lpips_each_step_adds_its_weighted_distance_to_the_l1_loss():
    import lpips

    restorer = tiny_gfpgan()
    vgg = vgg16_features(seed=2)
    loss = PerceptualLoss(perceptual_loss.build(vgg), weight=0.1)
    degraded, targets = smooth_pairs(1)
    torch.manual_seed(7)  # the StyleGAN decoder's noise
    result = fine_tune(restorer, degraded, targets, FineTuneSettings(3, learning_rate=2e-3, batch_size=1,
                                                                     ema_decay=0.0), perceptual_loss=loss)

    draws = torch.Generator().manual_seed(0)
    torch.randint(1, (1,), generator=draws)
    flip = bool(torch.randint(2, (1,), generator=draws))
    flipped = (lambda images: images.flip(-1)) if flip else (lambda images: images)
    reference = lpips.LPIPS(net="vgg", pretrained=True, pnet_rand=True, verbose=False).eval()
    for part in range(1, 6):  # lpips' slices keep torchvision's layer numbers as their children's names
        for index, layer in getattr(reference.net, f"slice{part}").named_children():
            if isinstance(layer, torch.nn.Conv2d):
                layer.load_state_dict({name: vgg[f"features.{index}.{name}"] for name in ("weight", "bias")})
    torch.manual_seed(7)
    with torch.no_grad():
        output = restorer.network(flipped(degraded))[0]
        distance = float(reference(output, flipped(targets)).mean())
        l1 = float(F.l1_loss(output, flipped(targets)))
    assert distance > 1e-3
    assert result.losses[0] == pytest.approx(l1 + 0.1 * distance, rel=1e-5)


def test_weights_that_are_not_vgg16_are_refused_naming_what_they_are():
    vgg19_like = {**vgg16_features(seed=2), "features.34.weight": torch.zeros(1), "features.34.bias": torch.zeros(1)}
    with pytest.raises(ValueError, match=r"torchvision's VGG16 .*features\.34\.bias.*VGG19"):
        perceptual_loss.build(vgg19_like)


def test_codeformer_is_not_fine_tuned_on_pixels():
    restorer = FaceRestorer(tiny_gfpgan().network, "CodeFormer")
    loss = PerceptualLoss(torch.nn.Identity())
    degraded, targets = smooth_pairs(1)
    with pytest.raises(ValueError, match="^perceptual_loss: CodeFormer is fine-tuned on its codes"):
        fine_tune(restorer, degraded, targets, FineTuneSettings(1), perceptual_loss=loss)
