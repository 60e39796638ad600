"""Cost of filling scratches at full resolution (priors/inpainting.py): time and peak memory for
1, 6 and 24 MP photos with about 1 % of their pixels damaged (thin scratches and dust, before the
mask is grown), by Telea and by LaMa (spandrel's big-lama architecture, 51 M parameters, random
weights: the cost does not depend on the weights).

Each case runs in a fresh child process, so that its peak memory is its own: on the CPU the peak
resident memory (VmHWM) above what the process held just before the call, which counts numpy's
and OpenCV's buffers as well as torch's; on CUDA the allocator's peak (bench/memory.py). The
working copy of the photo (the result, the size of the input) is part of it. "crop px" is what
the fill reads (LaMa: its crops grown to multiples of 8), against the photo's pixels.

    .venv/bin/python bench/bench_inpainting.py [--sizes 1 6 24] [--methods telea lama] [--device cuda]
                                               [--threads N]

On a CPU shared with other work, `--threads 1` gives steadier (and there much shorter) times than
torch's default of one thread per core, whose threads wait for each other. glibc keeps much of
what the many crop-sized tensors free (its mmap threshold grows as they are freed), which the
peak resident memory counts; `--live-memory` fixes that threshold in the children
(MALLOC_MMAP_THRESHOLD_), so that the peak shows the memory actually in use.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

import harness  # noqa: E402,F401  (makes the pack importable as comfyui_ssdiff)
from comfyui_ssdiff.priors.inpainting import LAMA_MULTIPLE, fill, holes_of, plan_crops  # noqa: E402
from memory import WorkingMemory  # noqa: E402

ASPECT = 3 / 2


def photo_size(megapixels: float) -> tuple[int, int]:
    """(height, width) of a 3:2 photo of that many megapixels: 24 -> 4000 x 6000."""
    height = round((megapixels * 1e6 / ASPECT) ** 0.5)
    return height, round(height * ASPECT)


def damage(height: int, width: int, fraction: float, seed: int = 0) -> np.ndarray:
    """H x W uint8: thin scratches (1 to 3 px wide, mostly along the long film axis, 10 to 60 %
    of the photo's height) until 70 % of the damage, then dust (1 to 4 px radius)."""
    import cv2

    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    target = fraction * height * width
    while mask.sum(dtype=np.int64) < 0.7 * target:
        for _ in range(8):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            length = rng.uniform(0.1, 0.6) * height
            angle = rng.normal(np.pi / 2, 0.15) if rng.random() < 0.7 else rng.uniform(0, np.pi)
            end = (int(x + length * np.cos(angle)), int(y + length * np.sin(angle)))
            cv2.line(mask, (int(x), int(y)), end, 1, int(rng.integers(1, 4)))
    while mask.sum(dtype=np.int64) < target:
        for _ in range(64):
            centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
            cv2.circle(mask, centre, int(rng.integers(1, 5)), 1, -1)
    return mask


def photo(height: int, width: int) -> torch.Tensor:
    """1 x 3 x H x W in [0, 1]: smooth shading (its content does not change the cost)."""
    y = torch.linspace(0, 1, height)[:, None]
    x = torch.linspace(0, 1, width)[None]
    return torch.stack([0.3 + 0.4 * x * y, 0.6 - 0.3 * y + 0.0 * x, 0.2 + 0.5 * x + 0.0 * y])[None].contiguous()


def lama_network(device: torch.device) -> torch.nn.Module:
    from spandrel.architectures.LaMa import LaMa

    torch.manual_seed(0)
    return LaMa(in_nc=4, out_nc=3).eval().requires_grad_(False).to(device)


def _resident_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field):
                return int(line.split()[1]) / 1024
    return float("nan")


def run_case(megapixels: float, method: str, device: str, fraction: float, threads: int | None = None) -> dict:
    """One case in this process: the fill's seconds and peak working memory (MiB)."""
    import cv2

    if threads:
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
    device = torch.device(device)
    height, width = photo_size(megapixels)
    mask = damage(height, width, fraction)
    holes = holes_of(mask)
    crops, _ = plan_crops(holes)
    grow = (lambda side: -(-side // LAMA_MULTIPLE) * LAMA_MULTIPLE) if method == "lama" else (lambda side: side)
    case = {"megapixels": height * width / 1e6, "size": f"{width}x{height}", "method": method,
            "damaged": float(mask.mean()), "holes": float(holes.mean()), "crops": len(crops),
            "crop_px": sum(grow(crop.height) * grow(crop.width) for crop in crops) / (height * width)}
    del holes, crops
    photos = photo(height, width).to(device)
    masks = torch.from_numpy(mask)[None].to(device)
    network = lama_network(device) if method == "lama" else None
    if device.type == "cuda":
        memory = WorkingMemory(device)
        start = time.perf_counter()
        case["peak_mib"] = memory.peak_mib(lambda: fill(photos, masks, method, network))
        case["seconds"] = time.perf_counter() - start
    else:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # VmHWM back to the current resident size
        before = _resident_mib("VmRSS")
        start = time.perf_counter()
        fill(photos, masks, method, network)
        case["seconds"] = time.perf_counter() - start
        case["peak_mib"] = _resident_mib("VmHWM") - before
    case["photo_mib"] = photos.numel() * photos.element_size() / 2 ** 20
    return case


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 6, 24], help="megapixels")
    parser.add_argument("--methods", nargs="+", default=["telea", "lama"], choices=["telea", "lama"])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--damage", type=float, default=0.01, help="fraction of the pixels damaged")
    parser.add_argument("--threads", type=int, help="CPU threads of torch and OpenCV (default: theirs)")
    parser.add_argument("--live-memory", action="store_true", help="glibc returns freed memory at once")
    parser.add_argument("--case", nargs=2, metavar=("MEGAPIXELS", "METHOD"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.case:
        print(json.dumps(run_case(float(arguments.case[0]), arguments.case[1], arguments.device, arguments.damage,
                                  arguments.threads)))
        return
    threads = arguments.threads or torch.get_num_threads()
    print(f"torch {torch.__version__}, {threads} threads, device {arguments.device}"
          + (f" ({torch.cuda.get_device_name()})" if arguments.device.startswith("cuda") else ""))
    environment = dict(os.environ)
    if arguments.live_memory:
        environment.update(MALLOC_MMAP_THRESHOLD_="131072", MALLOC_TRIM_THRESHOLD_="131072")
        print("glibc: mmap and trim thresholds fixed at 128 KiB (--live-memory)")
    print("\n| photo | method | damaged | holes (grown 2 px) | crops | crop px / photo px | time (s) | "
          "peak memory (MiB) | photo (MiB) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for megapixels in arguments.sizes:
        for method in arguments.methods:
            child = subprocess.run([sys.executable, __file__, "--case", str(megapixels), method, "--device",
                                    arguments.device, "--damage", str(arguments.damage)]
                                   + (["--threads", str(arguments.threads)] if arguments.threads else []),
                                   capture_output=True, text=True, env=environment)
            if child.returncode != 0:
                print(f"| {megapixels:g} MP | {method} | failed: {child.stderr.strip().splitlines()[-1][:120]} |")
                continue
            case = json.loads(child.stdout.strip().splitlines()[-1])
            print(f"| {case['megapixels']:.1f} MP ({case['size']}) | {method} | {case['damaged']:.2%} | "
                  f"{case['holes']:.2%} | {case['crops']} | {case['crop_px']:.1%} | {case['seconds']:.1f} | "
                  f"{case['peak_mib']:.0f} | {case['photo_mib']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
