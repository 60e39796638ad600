"""Cost of the identity guidance term (issue 30) beside a plain forward of the face UNet, in one run.

Builds the real FFHQ-512 face UNet and facexlib's ArcFace IR-SE-50 (random weights) and times, at
512 x 512, batch 1: a plain UNet forward; stage 2's guidance gradient (structure and colour terms,
what a guided step adds to the forward) without and with the identity term (ArcFace forward and
backward through the re-alignment onto its 112 px template). The term's cost per step is the
difference of the last two.

    .venv/bin/python bench/bench_identity.py [--device cuda] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

import harness  # noqa: E402,F401  (makes the pack importable as comfyui_ssdiff)
from comfyui_ssdiff.models.guided_diffusion import FaceUNet, FaceUNetConfig  # noqa: E402
from comfyui_ssdiff.priors.identity import identity_embedder  # noqa: E402
from comfyui_ssdiff.ssdiff_core.guidance import SelectiveGuidance  # noqa: E402
from comfyui_ssdiff.ssdiff_core.identity import IdentityTerm, mean_identity  # noqa: E402
from comfyui_ssdiff.ssdiff_core.masks import selective_masks  # noqa: E402
from comfyui_ssdiff.ssdiff_core.schedule import StepTime  # noqa: E402
from timing import median_seconds  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    device = torch.device(arguments.device)
    torch.manual_seed(0)
    from facexlib.recognition.arcface_arch import Backbone

    unet = FaceUNet(FaceUNetConfig.ffhq512()).to(device).eval().requires_grad_(False)
    arcface = Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se").to(device).eval()
    size = 512
    image = torch.rand(1, 3, size, size, device=device) * 2 - 1
    references = torch.rand(3, 3, size, size, device=device) * 2 - 1
    embed = identity_embedder(arcface)
    with torch.no_grad():
        reference = mean_identity(embed(references))
    masks = selective_masks(torch.zeros(1, 1, size, size, device=device), None)
    term = IdentityTerm(embed, reference, (size, size))
    plain_stage = SelectiveGuidance(image, image.flip(-1), masks)
    identity_stage = SelectiveGuidance(image, image.flip(-1), masks, terms=(term,))
    timestep = torch.tensor([500.0], device=device)
    when = StepTime(300.0, 1000)  # below T1: structure and colour terms
    plain_run, identity_run = plain_stage.start(image), identity_stage.start(image)
    x0 = image.clone()
    plain_run.gradient(x0, StepTime(450.0, 1000)), identity_run.gradient(x0, StepTime(450.0, 1000))  # colour target

    def forward():
        with torch.no_grad():
            unet(image, timestep)

    seconds = median_seconds({"plain UNet forward": forward,
                              "stage-2 guidance gradient": lambda: plain_run.gradient(x0, when),
                              "stage-2 guidance gradient + identity term": lambda: identity_run.gradient(x0, when)},
                             arguments.repeats, device)
    forward_s = seconds["plain UNet forward"]
    term_s = seconds["stage-2 guidance gradient + identity term"] - seconds["stage-2 guidance gradient"]
    print(f"device: {device} ({torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'}), "
          f"{torch.get_num_threads()} threads, {size} x {size}, batch 1, fp32, median of {arguments.repeats}\n")
    print("| what | seconds | x plain forward |\n|---|---|---|")
    for name, value in seconds.items():
        print(f"| {name} | {value:.3f} | {value / forward_s:.3f} |")
    print(f"| identity term alone (difference) | {term_s:.3f} | {term_s / forward_s:.3f} |")


if __name__ == "__main__":
    main()
