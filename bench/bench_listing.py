"""What a frontend load costs when the models folders are full of other packs' checkpoints: the time
of GET /object_info (every node's schema, every loader's file list) on a real ComfyUI, and the
bytes the server read for it (Linux's rchar of the server process), with the pack's own tiny files
only, then right after N checkpoints of other kinds arrived (cold: each new file's names are read
once), then again (warm), measured in one run.

    .venv/bin/python bench/bench_listing.py [--files 300] [--mib 8] [--repeats 3]

The files are torch zip checkpoints (.pth) and .safetensors files in equal numbers, each of
--mib MiB, spread over models/ssdiff, models/facedetection and models/facerestore_models (the
folders shared with other packs).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests
import torch
from safetensors.torch import save_file

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.headless import ComfyServer, default_host  # noqa: E402
from harness.tiny_models import (save_codeformer, save_face_ddpm, save_face_parser, save_retinaface_mobile,  # noqa: E402
                                 save_scratch_detector, tiny_face_unet)
from comfyui_ssdiff.models.files import MODEL_FOLDERS  # noqa: E402


def bytes_read(server: ComfyServer) -> int:
    lines = Path(f"/proc/{server.process.pid}/io").read_text().splitlines()
    return int(next(line for line in lines if line.startswith("rchar")).split()[1])


def object_info(server: ComfyServer) -> tuple[float, int]:
    """Seconds and bytes read of one GET /object_info."""
    before, started = bytes_read(server), time.perf_counter()
    response = requests.get(f"{server.url}/object_info", timeout=600)
    seconds = time.perf_counter() - started
    response.raise_for_status()
    assert "SSDiffSampler" in response.json()
    return seconds, bytes_read(server) - before


def other_packs_files(root: Path, count: int, mib: int) -> int:
    """`count` checkpoints of other kinds in the shared folders; their total bytes."""
    total = 0
    for index in range(count):
        folder = root / MODEL_FOLDERS[index % len(MODEL_FOLDERS)] / "other_packs"
        folder.mkdir(exist_ok=True)
        tensors = {f"other.{index}.weight": torch.zeros((mib << 20) // 4)}
        path = folder / f"other_{index:04d}{'.pth' if index % 2 else '.safetensors'}"
        torch.save(tensors, path) if index % 2 else save_file(tensors, str(path))
        total += path.stat().st_size
    return total


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=300)
    parser.add_argument("--mib", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ssdiff-bench-listing-") as work:
        root = Path(work) / "models"
        for folder in MODEL_FOLDERS:
            (root / folder).mkdir(parents=True)
        save_face_ddpm(tiny_face_unet(), root / "ssdiff" / "tiny_face_ddpm.pth")
        save_scratch_detector(root / "ssdiff" / "FT_Epoch_latest.pt")
        save_face_parser(root / "facedetection" / "parsing_parsenet.pth", "parsenet")
        save_retinaface_mobile(root / "facedetection" / "detection_mobilenet0.25_Final.pth")
        save_codeformer(root / "facerestore_models" / "codeformer.pth")
        with ComfyServer(default_host(), Path(work) / "server", root) as server:
            object_info(server)
            own = [object_info(server) for _ in range(options.repeats)]
            total = other_packs_files(root, options.files, options.mib)
            cold = object_info(server)
            warm = [object_info(server) for _ in range(options.repeats)]
    rows = [("the pack's own files only", statistics.median(s for s, _ in own), max(b for _, b in own)),
            (f"{options.files} other checkpoints just arrived (cold)", *cold),
            (f"{options.files} other checkpoints, again (warm)", statistics.median(s for s, _ in warm),
             max(b for _, b in warm))]
    print(f"GET /object_info, {options.files} other packs' checkpoints of {options.mib} MiB "
          f"({total / 2**30:.2f} GiB in all), median of {options.repeats} where repeated:\n")
    print("| models folders | seconds | x own files only | MiB read by the server | share of the new files' bytes |")
    print("|---|---|---|---|---|")
    for name, seconds, read in rows:
        print(f"| {name} | {seconds:.3f} | {seconds / rows[0][1]:.1f} | {read / 2**20:.2f} | "
              f"{100 * read / total:.3f} % |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
