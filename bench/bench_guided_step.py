"""Cost of SSDiff's guidance: one guided step vs one plain UNet forward of the same model.

Builds the real FFHQ-512 face UNet (159.8 M parameters, random weights) and times, at 512 x 512:
a plain forward; a stage-1 step; a stage-2 step above T1 (structure + reference-structure terms)
and below T1 (structure + colour); and the same steps around a stub model, i.e. what a guided
step adds to the UNet; then the peak working memory of a plain forward and of guided steps,
per face, beside the released code's. On a busy CPU the direct ratio drifts by several per cent from run to run;
the overhead column is the stable measure of the guidance's cost. The whole-face time is
extrapolated from the step times (CPU) or measured (GPU, with --whole-face).

    .venv/bin/python bench/bench_guided_step.py [--device cuda] [--size 512] [--repeats 3]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Callable

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

import harness  # noqa: E402,F401  (makes the pack importable as comfyui_ssdiff)
from comfyui_ssdiff.models.guided_diffusion import FaceUNet, FaceUNetConfig  # noqa: E402
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance  # noqa: E402
from comfyui_ssdiff.ssdiff_core.masks import selective_masks  # noqa: E402
from comfyui_ssdiff.ssdiff_core.sampler import VARIANCE_SINK_KEY, sample_ssdiff  # noqa: E402
from comfyui_ssdiff.ssdiff_core.schedule import respaced_sigmas  # noqa: E402
from memory import WorkingMemory  # noqa: E402
from timing import median_seconds  # noqa: E402

DEFAULT_STEPS = 100
REFERENCE_STEP_MIB = {512: 352}
"""Peak working memory (MiB) of a steady guided step of the released SSDiff code, fp32, batch 1,
by image side, for scale: measured side by side with this pack's step when that held 441 MiB
(the released code cannot be run from here)."""


def discrete_sigmas() -> torch.Tensor:
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    alphas_cumprod = torch.cumprod(1 - betas, dim=0)
    return ((1 - alphas_cumprod) / alphas_cumprod).sqrt()


def host_like_model(unet: FaceUNet, sigmas: torch.Tensor, dtype: torch.dtype):
    """What ComfyUI's BaseModel does around the UNet: VP input, nearest timestep, x0 output."""
    log_sigmas = sigmas.float().log()

    def apply(x, sigma, model_options=None, **_):
        x_t = x / (1 + sigma[:, None, None, None] ** 2).sqrt()
        t = (sigma.float().log()[None] - log_sigmas[:, None].to(sigma.device)).abs().argmin(dim=0).float()
        output = unet(x_t.to(dtype), t).float()
        sink = (model_options or {}).get("transformer_options", {}).get(VARIANCE_SINK_KEY)
        if sink is not None:
            sink.store(output, None)
        return x - sigma[:, None, None, None] * output[:, :3]
    return apply


def stub_model(size: int, device: torch.device):
    """Returns a fixed output without running a network: what a step costs besides the UNet."""
    output = torch.zeros(1, 6, size, size, device=device)

    def apply(x, sigma, model_options=None, **_):
        model_options["transformer_options"][VARIANCE_SINK_KEY].store(output, None)
        return x * 0.5
    return apply


def synthetic_inputs(size: int, device: torch.device):
    generator = torch.Generator().manual_seed(0)
    face = (torch.rand(1, 3, size, size, generator=generator) * 2 - 1).to(device)
    scratch = torch.zeros(1, 1, size, size, device=device)
    scratch[..., size // 3, :] = 1
    scratch[..., :, size // 2] = 1
    labels = torch.ones(1, size, size, dtype=torch.long, device=device)
    labels[:, : size // 5] = 0
    labels[:, -size // 6:] = 16
    return face, scratch, labels


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtypes", default="fp32,bf16")
    parser.add_argument("--whole-face", action="store_true", help="run both stages at the default steps")
    options = parser.parse_args()
    device = torch.device(options.device)
    torch.manual_seed(0)
    unet32 = FaceUNet(FaceUNetConfig.ffhq512()).eval().to(device)
    sigmas = discrete_sigmas()
    face, scratch, labels = synthetic_inputs(options.size, device)
    stage1 = PseudoReferenceGuidance(degraded=face, scratch=scratch)
    stage2 = SelectiveGuidance(coarse=face, pseudo_reference=face, masks=selective_masks(scratch, labels),
                               colour_target=face)
    x = torch.randn(1, 3, options.size, options.size, device=device)

    print(f"device {device}, {options.size}x{options.size}, batch 1, median of {options.repeats}; "
          f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")
    print(f"| dtype | plain forward (s) | stage-1 step (s) | stage-2 step, t >= T1 (s) | "
          f"stage-2 step, t < T1 (s) | guided/plain (worst stage) | overhead besides the UNet (s, worst) | "
          f"(plain + overhead)/plain | whole face, {DEFAULT_STEPS}+{DEFAULT_STEPS} steps (s) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in options.dtypes.split(","):
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        unet = unet32.to(dtype)
        model = host_like_model(unet, sigmas, dtype)
        extra_args = {"model_options": {}, "seed": 0}

        def step(guidance, t: int, around=model):
            grid = torch.stack([sigmas[t], sigmas[t - 1]]).float()
            scaled = x * (1 + grid[0] ** 2).sqrt()
            return lambda: sample_ssdiff(around, scaled, grid, extra_args, guidance=guidance,
                                         discrete_sigmas=sigmas)

        with torch.inference_mode():
            t_embed = torch.full((1,), 500.0, device=device)
            seconds = median_seconds({"plain": lambda: unet(x.to(dtype), t_embed), "stage1": step(stage1, 800),
                             "above": step(stage2, 600), "below": step(stage2, 200)}, options.repeats, device)
            plain, stage1_step, above, below = (seconds[key] for key in ("plain", "stage1", "above", "below"))
            stub = stub_model(options.size, device)
            overhead = max(median_seconds({"stage1": step(stage1, 800, stub), "above": step(stage2, 600, stub),
                                  "below": step(stage2, 200, stub)}, 5 * options.repeats, device).values())
            if options.whole_face:
                def whole_face():
                    for guidance in (stage1, stage2):
                        grid = respaced_sigmas(DEFAULT_STEPS, sigmas)
                        sample_ssdiff(model, x * (1 + grid[0] ** 2).sqrt(), grid, extra_args,
                                      guidance=guidance, discrete_sigmas=sigmas)
                whole = f"{median_seconds({'whole': whole_face}, 1, device)['whole']:.1f} (measured)"
            else:
                whole = f"{DEFAULT_STEPS * (stage1_step + (above + below) / 2):.0f} (from step times)"
        worst = max(stage1_step, above, below) / plain
        print(f"| {name} | {plain:.3f} | {stage1_step:.3f} | {above:.3f} | {below:.3f} | {worst:.3f} | "
              f"{overhead:.4f} | {(plain + overhead) / plain:.3f} | {whole} |")
    unet32.float()
    print_memory(unet32, sigmas, options.size, device, [name for name in options.dtypes.split(",")])


class MarkAtPass:
    """The sampler's `interrupt`, called as each guided pass starts (one per step here): runs
    `mark` as pass `number` starts."""

    def __init__(self, number: int, mark: Callable[[], None]):
        self.remaining, self.mark = number, mark

    def __call__(self) -> None:
        self.remaining -= 1
        if self.remaining == 0:
            self.mark()


def print_memory(unet32: FaceUNet, sigmas: torch.Tensor, size: int, device: torch.device,
                 dtype_names: list[str]) -> None:
    """Peak working memory of a plain forward, and of a steady guided step: the second of two,
    counted from the moment it starts (the run's own tensors and what the first step left are
    then live), per face at batch 1 and 2."""
    reference = REFERENCE_STEP_MIB.get(size)
    how = "CUDA allocator" if device.type == "cuda" else "every CPU allocation (torch profiler)"
    print(f"\npeak working memory (MiB per face), {size}x{size}, {how}; the released code's steady guided "
          f"step, fp32, batch 1: {reference or 'not measured at this size'}")
    print("| dtype | batch | plain forward | stage-1 step | stage-2 step, t >= T1 | stage-2 step, t < T1 | "
          "worst step / released code's |")
    print("|---|---|---|---|---|---|---|")
    memory = WorkingMemory(device)
    for name in dtype_names:
        dtype = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]
        unet = unet32.to(dtype)
        model = host_like_model(unet, sigmas, dtype)
        for batch in (1, 2):
            face, scratch, labels = (value.expand(batch, *value.shape[1:]).contiguous()
                                     for value in synthetic_inputs(size, device))
            stage1 = PseudoReferenceGuidance(degraded=face, scratch=scratch)
            stage2 = SelectiveGuidance(coarse=face, pseudo_reference=face, masks=selective_masks(scratch, labels),
                                       colour_target=face)
            x = torch.randn(batch, 3, size, size, device=device)

            def second_step(guidance, t: int):
                grid = torch.stack([sigmas[t], sigmas[t - 1], sigmas[t - 2]]).float()
                return lambda: sample_ssdiff(model, x * (1 + grid[0] ** 2).sqrt(), grid,
                                             {"model_options": {}, "seed": 0}, guidance=guidance,
                                             discrete_sigmas=sigmas, interrupt=MarkAtPass(2, memory.mark))
            with torch.inference_mode():
                t_embed = torch.full((batch,), 500.0, device=device)
                peaks = [memory.peak_mib(function) / batch for function in (
                    lambda: unet(x.to(dtype), t_embed), second_step(stage1, 800), second_step(stage2, 600),
                    second_step(stage2, 200))]
            versus = f"{max(peaks[1:]) / reference:.2f}" if reference and name == "fp32" else "-"
            print(f"| {name} | {batch} | " + " | ".join(f"{peak:.0f}" for peak in peaks) + f" | {versus} |")
    unet32.float()


if __name__ == "__main__":
    main()
