"""The fine-tune's pixel path (GFPGAN and other restorers but CodeFormer) on spandrel's GFPGANv1Clean
at 64 px and a quarter of its widths: the L1 loss falls, the StyleGAN decoder stays frozen, the
rest trains, and the restorer given is left as it was."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from models.face_restorers import FaceRestorer
from models.face_restorers.fine_tune import FineTuneSettings, fine_tune


def tiny_gfpgan() -> FaceRestorer:
    from spandrel.architectures.GFPGAN.__arch.gfpganv1_clean_arch import GFPGANv1Clean

    torch.manual_seed(0)
    return FaceRestorer(GFPGANv1Clean(out_size=64, num_style_feat=64, channel_multiplier=1, narrow=0.25).eval(),
                        "GFPGAN")


def test_the_pixel_loss_falls_the_decoder_is_frozen_and_the_original_is_untouched():
    restorer = tiny_gfpgan()
    original = {key: value.clone() for key, value in restorer.network.state_dict().items()}
    generator = torch.Generator().manual_seed(1)
    targets = F.interpolate(torch.rand(2, 3, 8, 8, generator=generator), size=64, mode="bicubic").clamp(0, 1) * 2 - 1
    degraded = F.avg_pool2d(targets, 5, 1, 2)
    result = fine_tune(restorer, degraded, targets, FineTuneSettings(12, learning_rate=2e-3, batch_size=2,
                                                                     ema_decay=0.0))
    assert sum(result.losses[-3:]) < sum(result.losses[:3]), result.losses
    trained = result.restorer.network.state_dict()
    changed = {key.split(".", 1)[0] for key in original if not torch.equal(original[key], trained[key])}
    assert "stylegan_decoder" not in changed and {"conv_body_first", "final_linear"} <= changed
    assert all(torch.equal(value, original[key]) for key, value in restorer.network.state_dict().items())
