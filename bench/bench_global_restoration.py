"""Memory and time of BOPBTL's global restoration in scratch mode: this pack's chunked non-local
attention against the released dense formulation (N x N matrices over the N = H/4 * W/4 latent
positions, `models.bopbtl_global.dense_masked_attention`), both through the same pre- and
post-processing (`priors.global_restoration.restore_global`), at a size both can run here; then the
pack's alone at 3, 6 and 12 MP where the estimated time fits the budget (the rest are printed as
skipped, with the estimate), or, with `--sample-chunks K`, every larger size with only K chunks of
the non-local attention computed. Real networks (VAE_A encoder, scratch mapping, VAE_B decoder: 52.2 M
parameters), random weights, fp32, batch 1, a photo with a few scratches.

Peak working memory is bench/memory.py's (the CPU profiler's running sum of allocations, or CUDA's
peak above the start). Time: the comparison rows run twice (the first under the memory profiler),
the larger ones once, under the profiler. A larger row's estimate scales the pack's comparison time
by the arithmetic: 2 x (mapping parameters) x N for the convolutions, 4 x 512 x N^2 for the attention.

Sampled attention (`--sample-chunks K`): the attention's chunks are all alike (the same q x N buffers,
made and freed in turn), so computing K of them for real and giving the rest the rows of the last one
computed leaves every allocation of the run in place but the skipped chunks' short-lived buffers,
which are the same size as the computed ones': the peak is measured, not estimated. The time is the
run's, with the skipped chunks counted at the computed chunks' mean (an estimate, marked so). The
compared size runs both ways, so the table shows how close the sampled run comes to the full one.

    .venv/bin/python bench/bench_global_restoration.py [--device cuda] [--budget-s 2700]
    .venv/bin/python bench/bench_global_restoration.py --sample-chunks 2
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

import harness  # noqa: E402,F401  (makes the pack importable as comfyui_ssdiff)
from comfyui_ssdiff.models.bopbtl_global import (DEFAULT_CHUNK_BYTES, GlobalRestorationNetworks,  # noqa: E402
                                                 ScratchMapping, VAEDecoder, VAEEncoder, attention_chunk)
from comfyui_ssdiff.models.bopbtl_global import attention as attention_module  # noqa: E402
from comfyui_ssdiff.priors.global_restoration import restore_global  # noqa: E402
from memory import WorkingMemory  # noqa: E402
from timing import seconds  # noqa: E402

COMPARED = (512, 512)
LARGER = {"3 MP": (1504, 2000), "6 MP": (2112, 2832), "12 MP": (3008, 4000)}
"""Photo sizes (height, width), multiples of 16 as the detector makes them, 3:4."""


def random_networks(device: torch.device) -> GlobalRestorationNetworks:
    generator = torch.Generator().manual_seed(0)
    networks = []
    for network_class in (VAEEncoder, ScratchMapping, VAEDecoder):
        with torch.device("meta"):
            network = network_class()
        network = network.to_empty(device="cpu")
        with torch.no_grad():
            for parameter in network.parameters():
                std = 1 / parameter[0].numel() ** 0.5 if parameter.ndim > 1 else 0.1
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
        networks.append(network.to(device).eval())
    return GlobalRestorationNetworks(*networks)


def photo_and_mask(height: int, width: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """A smooth random photo and a mask of a few one-pixel scratches and a blot (~1 % of pixels)."""
    generator = torch.Generator().manual_seed(1)
    coarse = torch.rand(1, 3, height // 32, width // 32, generator=generator)
    photo = F.interpolate(coarse, (height, width), mode="bicubic", align_corners=False).clamp(0, 1)
    mask = torch.zeros(1, 1, height, width)
    for index in range(6):
        row = int(height * (index + 1) / 8)
        mask[..., row, width // 8: 7 * width // 8] = 1
        column = int(width * (index + 1) / 7)
        mask[..., height // 5: 4 * height // 5, column] = 1
    mask[..., height // 3: height // 3 + height // 20, width // 2: width // 2 + width // 20] = 1
    return photo.to(device), mask.to(device)


def mapping_flops(networks: GlobalRestorationNetworks, positions: int) -> float:
    convolutions = 2 * sum(parameter.numel() for parameter in networks.mapping.parameters()) * positions
    return convolutions + 4 * networks.mapping.NL.channels * positions ** 2


class SampledAttention:
    """Stands in for `attention._attended_rows` (one chunk of query rows of the non-local block):
    the first `computed` chunks are computed, timed; later chunks get the last computed chunk's rows
    (a view: no allocation), so the output is not the network's but every buffer the run holds is."""

    def __init__(self, computed: int, device: torch.device):
        self.computed, self.device = computed, device
        self.calls = self.timed = 0
        self.seconds = 0.0
        self.last: torch.Tensor | None = None

    def __call__(self, queries, keys, values, valid, temperature, renormalise):
        self.calls += 1
        rows = queries.shape[1]
        if self.timed < self.computed or self.last is None or self.last.shape[1] < rows:
            self.last = None
            result: list[torch.Tensor] = []
            self.seconds += seconds(lambda: result.append(ATTENDED_ROWS(queries, keys, values, valid, temperature,
                                                                        renormalise)), self.device)
            self.timed += 1
            self.last = result[0]
            return self.last
        return self.last[:, :rows]

    def estimated(self, elapsed: float) -> float:
        """The run's seconds with every chunk computed: the skipped ones at the computed ones' mean."""
        return elapsed + (self.calls - self.timed) * self.seconds / max(self.timed, 1)


ATTENDED_ROWS = attention_module._attended_rows


def sampled(function, computed: int, device: torch.device) -> tuple[float, float, SampledAttention]:
    """(peak working MiB, seconds, the sampler) of one call with `computed` attention chunks computed."""
    sampler = SampledAttention(computed, device)
    attention_module._attended_rows = sampler
    try:
        peak, elapsed = measured(function, device)
    finally:
        attention_module._attended_rows = ATTENDED_ROWS
    return peak, elapsed, sampler


def measured(function, device: torch.device) -> tuple[float, float]:
    """(peak working MiB, seconds) of one call under the memory profiler."""
    memory = WorkingMemory(device)
    start = time.perf_counter()
    peak = memory.peak_mib(function)
    return peak, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--budget-s", type=float, default=2700.0,
                        help="run a larger size only when its estimated time is below this")
    parser.add_argument("--chunk-bytes", type=int, default=DEFAULT_CHUNK_BYTES)
    parser.add_argument("--compare", type=int, default=COMPARED[0], help="side of the square compared photo")
    parser.add_argument("--larger", default=",".join(LARGER), help="which larger rows, comma-separated")
    parser.add_argument("--sample-chunks", type=int, default=0,
                        help="compute only this many chunks of the attention at the larger sizes (0: all); "
                             "peak memory measured, time estimated")
    options = parser.parse_args()
    device = torch.device(options.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    networks = random_networks(device)
    load = f", load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else ""
    print(f"device {device}, {torch.get_num_threads()} threads{load}; scratch mode, fp32, batch 1, random weights; "
          f"chunk budget {options.chunk_bytes / 2 ** 20:.0f} MiB\n")
    print("| photo | latent positions N | formulation | query rows per chunk | time (s) | "
          "peak working memory (MiB) | one N x N fp32 matrix (MiB) |")
    print("|---|---|---|---|---|---|---|")

    def row(label, size, formulation, chunk, seconds, peak, note=""):
        positions = (size[0] // 4) * (size[1] // 4)
        print(f"| {label} {size[1]}x{size[0]} | {positions:,} | {formulation} | {chunk} | {seconds} | {peak} | "
              f"{positions ** 2 * 4 / 2 ** 20:,.0f} |{note}")

    compared = (options.compare, options.compare)
    photo, mask = photo_and_mask(*compared, device)
    positions = (compared[0] // 4) * (compared[1] // 4)
    chunk = attention_chunk(positions, positions, chunk_bytes=options.chunk_bytes)
    results = {}
    for attention in ("chunked", "dense"):
        def run(attention=attention):
            results[attention] = restore_global(networks, photo, mask, chunk_bytes=options.chunk_bytes,
                                                attention=attention, postprocess="model")
        peak, _ = measured(run, device)
        elapsed = seconds(run, device)
        results[f"{attention} time"] = elapsed
        row(f"{compared[0] * compared[1] / 1e6:.2f} MP", compared, "this pack (chunked)" if attention == "chunked"
            else "released (dense)", chunk if attention == "chunked" else positions, f"{elapsed:.1f}", f"{peak:,.0f}")
    difference = (results["chunked"] - results["dense"]).abs().max().item()
    if options.sample_chunks:
        chunks = -(-positions // chunk)
        peak, elapsed, sampler = sampled(lambda: restore_global(networks, photo, mask, chunk_bytes=options.chunk_bytes,
                                                                postprocess="model"), options.sample_chunks, device)
        row(f"{compared[0] * compared[1] / 1e6:.2f} MP", compared,
            f"this pack (chunked), {sampler.timed} of {sampler.calls} chunks computed", chunk,
            f"estimated {sampler.estimated(elapsed):.1f} (ran {elapsed:.1f})", f"{peak:,.0f}")
        assert sampler.calls == chunks, (sampler.calls, chunks)

    base_seconds = results["chunked time"]
    base_flops = mapping_flops(networks, positions)
    for label, size in LARGER.items():
        if label not in options.larger.split(","):
            continue
        positions = (size[0] // 4) * (size[1] // 4)
        chunk = attention_chunk(positions, positions, chunk_bytes=options.chunk_bytes)
        estimate = base_seconds * mapping_flops(networks, positions) / base_flops
        if options.sample_chunks:
            photo, mask = photo_and_mask(*size, device)
            peak, elapsed, sampler = sampled(lambda: restore_global(networks, photo, mask,
                                                                    chunk_bytes=options.chunk_bytes,
                                                                    postprocess="model"),
                                             options.sample_chunks, device)
            row(label, size, f"this pack (chunked), {sampler.timed} of {sampler.calls:,} chunks computed", chunk,
                f"estimated {sampler.estimated(elapsed):,.0f} (ran {elapsed:,.0f})", f"{peak:,.0f}")
            del photo, mask
            continue
        if estimate > options.budget_s:
            row(label, size, "this pack (chunked)", chunk, f"skipped: estimated {estimate / 60:,.0f} min here "
                f"(budget {options.budget_s / 60:.0f} min)", "-")
            continue
        photo, mask = photo_and_mask(*size, device)
        peak, elapsed = measured(lambda: restore_global(networks, photo, mask, chunk_bytes=options.chunk_bytes,
                                                        postprocess="model"), device)
        row(label, size, "this pack (chunked)", chunk, f"{elapsed:,.0f} (estimated {estimate:,.0f})", f"{peak:,.0f}")
    print(f"\nlargest difference, chunked vs dense output at {compared[1]}x{compared[0]}: {difference:.2e}")


if __name__ == "__main__":
    main()
