"""Cost of SSDiff guidance on a latent model: one guided step of an SD1.5-size UNet and VAE
(random weights, ComfyUI's own classes) at 512 x 512 pixels (64 x 64 latents), per latent
guidance mode, against a plain UNet call: seconds per step (rows interleaved) and peak memory
(CUDA: allocator peak; CPU: peak resident memory above the baseline, sampled every 5 ms in a
separate run).

    .venv/bin/python bench/bench_latent_path.py [--size 512] [--repeats 2]
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import psutil
import torch
from timing import median_seconds

REPO = Path(__file__).resolve().parent.parent
SD15_UNET = {
    "use_checkpoint": False, "image_size": 32, "in_channels": 4, "out_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2], "channel_mult": [1, 2, 4, 4], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "transformer_depth_middle": 1, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_spatial_transformer": True, "legacy": False, "context_dim": 768, "use_linear_in_transformer": False,
    "adm_in_channels": None, "use_temporal_resblock": False, "use_temporal_attention": False,
}
SD_VAE = {"embed_dim": 4, "ddconfig": {
    "double_z": True, "z_channels": 4, "resolution": 256, "in_channels": 3, "out_ch": 3, "ch": 128,
    "ch_mult": [1, 2, 4, 4], "num_res_blocks": 2, "attn_resolutions": [], "dropout": 0.0}}


def start_host(device: str):
    """ComfyUI in-process with the pack; returns the pack's module."""
    sys.path.append(str(REPO))
    from harness.headless import default_host
    from harness.in_process_host import loaded_pack, start_comfyui
    start_comfyui(default_host(), cpu=device == "cpu")
    return loaded_pack(REPO)


class PeakMemory:
    """Peak memory of a block in MiB: CUDA allocator peak, or resident-set peak on the CPU."""

    def __init__(self, device: torch.device):
        self.device, self.peak = device, 0.0

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            process = psutil.Process()
            self.base, self.running, highest = process.memory_info().rss, True, [0]

            def sample():
                while self.running:
                    highest[0] = max(highest[0], process.memory_info().rss)
                    time.sleep(0.005)
            self.highest, self.thread = highest, threading.Thread(target=sample, daemon=True)
            self.thread.start()
        return self

    def __exit__(self, *_):
        if self.device.type == "cuda":
            self.peak = (torch.cuda.max_memory_allocated() - self.base) / 2 ** 20
        else:
            self.running = False
            self.thread.join()
            self.peak = max(self.highest[0] - self.base, 0) / 2 ** 20


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=2)
    options = parser.parse_args()
    device = torch.device(options.device)
    pack = start_host(options.device)
    from harness.tiny_models import sd15_model, sd_vae
    adapter = pack.comfy_adapter
    from comfyui_ssdiff.ssdiff_core.guidance import SelectiveGuidance
    from comfyui_ssdiff.ssdiff_core.masks import selective_masks
    from comfyui_ssdiff.ssdiff_core.sampler import sample_ssdiff

    model, vae = sd15_model(SD15_UNET), sd_vae(SD_VAE)
    base = model.model.to(device).eval()
    vae.first_stage_model.to(device)
    size, latent_size = options.size, options.size // 8
    face = torch.rand(1, 3, size, size, device=device) * 2 - 1
    scratch = torch.zeros(1, 1, size, size, device=device)
    scratch[..., size // 3, :] = 1
    labels = torch.ones(1, size, size, dtype=torch.long, device=device)
    guidance = SelectiveGuidance(coarse=face, pseudo_reference=face, masks=selective_masks(scratch, labels),
                                 colour_target=face)
    context = torch.randn(1, 77, 768, device=device)
    x = torch.randn(1, 4, latent_size, latent_size, device=device)

    def apply(latent, sigma, **_):
        return base.apply_model(latent, sigma, c_crossattn=context)

    sigmas = adapter.face_model.schedule_sigmas(base)

    def plain():
        apply(x, torch.full((1,), float(sigmas[500]), device=device))

    def guided(mode: str):
        space = adapter.sampling.model_space(base, vae, mode)
        grid = torch.stack([sigmas[200], sigmas[199]]).float()

        def run():
            sample_ssdiff(apply, x * (1 + grid[0] ** 2).sqrt(), grid, {"model_options": {}, "seed": 0},
                          guidance=guidance, discrete_sigmas=space.discrete_sigmas, pixel_map=space.pixel_map,
                          clamp_x0=space.pixel_space)
        return run

    print(f"device {device}, {size}x{size} px ({latent_size}x{latent_size} latents), batch 1, SD1.5-size UNet "
          f"and VAE (random weights), median of {options.repeats}; torch {torch.__version__}")
    print("| step | seconds | x plain UNet call | peak memory (MiB) |")
    print("|---|---|---|---|")
    rows = [("plain UNet call", plain)] + [(f"guided, {mode}", guided(mode)) for mode in adapter.pixel_maps.LATENT_GUIDANCE]
    peaks: dict[str, float] = {}
    with torch.inference_mode():
        for name, function in rows:
            function()  # warm-up
            with PeakMemory(device) as memory:  # a run of its own: the sampling thread takes a core
                function()
            peaks[name] = memory.peak
        times = median_seconds(dict(rows), options.repeats, device, warm_up=False)
    plain_seconds = times["plain UNet call"]
    for name, _ in rows:
        seconds = times[name]
        print(f"| {name} | {seconds:.2f} | {seconds / plain_seconds:.2f} | {peaks[name]:.0f} |")


if __name__ == "__main__":
    main()
