"""The GPU check (issue 31): builds the pack's real architectures with random weights, runs each once
on the device and prints one table: time, peak memory and whether the outputs are finite and on the
requested device. Needs no internet and no model file.

Rows (their keys, for --rows):
  step        a guided SSDiff step (stage 2 below T1) of the face UNet, fp32 / bf16 / fp16, batch 1 and 4
  face        a whole face, stage 1 then stage 2 (2 x 100 steps at batch 1, 2 x 25 at batch 4; fewer
              where the measured step time would make the row longer than 30 s; --steps sets them)
  scratch     BOPBTL's scratch detector (detect_scratch_probability), at 512 px and on the photo
  detector    RetinaFace ResNet-50 (detect_faces), at 512 px and on the photo
  parser      the ResNet-34 BiSeNet face parser (parse_faces)
  codeformer  CodeFormer's coarse restoration (coarse_restore)
  cap_vstnet  CAP-VSTNet's colour transfer (photorealistic RevResNet)
  arcface     ArcFace IR-SE-50 embeddings (the identity term's embedder)
  lama        LaMa (big-lama) filling ~1 % damage (priors.inpainting.fill), at 512 px and on the photo
  bopbtl      BOPBTL's global restoration, scratch mode, at 512 px and (on a GPU) on the photo
  ddcolor     DDColor ConvNeXt-T colourising (priors.colourise), at 512 px and on the photo
  photo       the whole-photo workflow end to end in a headless ComfyUI (the README's main job on the
              bundled sample: MTCNN for the face detector, random stand-ins for the other networks;
              the workflow's 100 steps on a GPU, 2 otherwise, --steps sets them)
  lowvram     the same at 20 steps under ComfyUI's --lowvram, and
  novram      under --novram (CUDA only: ComfyUI turns both off on the CPU; tests/test_low_vram.py
              runs ComfyUI's loading under them on the CPU, on one device)
They run in the order step and face (per dtype and batch), photo, lowvram, novram, then the priors,
BOPBTL last.

On a CUDA device: the FFHQ-512 UNet (159.8 M parameters) on 512 px faces, priors at 512 px and on a
12 MP photo (4000 x 3008), the released sizes of every network (CodeFormer's 9-layer transformer,
DDColor's 100-query decoder; the main job's face UNet, CodeFormer and CAP-VSTNet at full size too):
about 7 minutes on one H100 (estimated: no GPU was lent when this was written). Without one (or with
--small): the same checks at a small size (32 px faces with the tiny UNet, as bf16 and fp16
convolutions take PyTorch's slow path on CPUs without native support; 128 px priors; a 0.1 MP photo;
2 steps; the main job's tiny stand-ins and 64 px faces), on one CPU thread (on a shared machine
torch's thread per core wait for each other: 2.3 times longer here), about 1.5 minutes on 2 CPU
cores (tests/test_gpu_check.py runs it), so that CI keeps the check working.

Peak memory: on CUDA the allocator's peak above what was allocated when the row started (the
whole-photo row: the device's used memory sampled every 0.1 s, above what it was before ComfyUI
started: the server's CUDA context included); on the CPU bench/memory.py's profiler count
("-" for the whole-photo row, which runs in another process). Each row runs once (on CUDA the guided
step after a warm-up call); the other rows' times include their first call, the networks' building
excluded.

A row's last column: "ok"; "NaN" (an output holds NaN or inf; for the whole photo: numpy warned in
the server's log of an invalid value, as when a NaN reaches the saved image's 8-bit levels);
"device mismatch" (an output, a parameter or a buffer is not on the requested device; for the
whole photo: ComfyUI computes on another device); "error: ..." (an exception); "OOM" (CUDA ran out
of memory: reported, not failed); "not run" (a CUDA-only row on the CPU). The exit status is 1 when a row is NaN, mismatched or in error.

    .venv/bin/python bench/gpu_check.py [--device auto|cpu|cuda] [--small] [--steps N] [--threads N]
                                        [--rows step,face,scratch,...]
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, fields, is_dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("KINETO_LOG_LEVEL", "99")  # the CPU memory count's profiler, quiet
import torch  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.append(str(REPO))

import harness  # noqa: E402,F401  (makes the pack importable as comfyui_ssdiff)
from bench_global_restoration import LARGER, photo_and_mask, random_networks  # noqa: E402
from bench_guided_step import DEFAULT_STEPS, discrete_sigmas, host_like_model, synthetic_inputs  # noqa: E402
from bench_inpainting import damage, photo as shaded_photo  # noqa: E402
from comfyui_ssdiff.models.guided_diffusion import FaceUNet, FaceUNetConfig  # noqa: E402
from comfyui_ssdiff.ssdiff_core.guidance import PseudoReferenceGuidance, SelectiveGuidance  # noqa: E402
from comfyui_ssdiff.ssdiff_core.masks import selective_masks  # noqa: E402
from comfyui_ssdiff.ssdiff_core.sampler import sample_ssdiff  # noqa: E402
from comfyui_ssdiff.ssdiff_core.schedule import respaced_sigmas  # noqa: E402
from harness.tiny_models import TINY_FACE_UNET  # noqa: E402
from memory import WorkingMemory  # noqa: E402
from timing import seconds  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
ROWS = ("step", "face", "scratch", "detector", "parser", "codeformer", "cap_vstnet", "arcface", "lama", "bopbtl",
        "ddcolor", "photo", "lowvram", "novram")
MEMORY_MODES = {"lowvram": "--lowvram", "novram": "--novram"}
"""The whole-photo rows run again under these ComfyUI options, on CUDA."""
MEMORY_MODE_STEPS = 20
FACE_ROW_SECONDS = 30
"""A whole-face row takes fewer steps where the measured step time would make it longer than this."""
BATCHES = (1, 4)
DAMAGE = 0.01
"""Fraction of the photo's pixels the LaMa rows fill (before the mask is grown)."""
ESTIMATED_SECONDS = {
    "full": {"step": 15, "face": 60, "scratch": 10, "detector": 10, "parser": 5, "codeformer": 10, "cap_vstnet": 5,
             "arcface": 5, "lama": 30, "bopbtl": 100, "ddcolor": 15, "photo": 60, "lowvram": 40, "novram": 50},
    "small": {"step": 5, "face": 15, "scratch": 7, "detector": 3, "parser": 3, "codeformer": 4, "cap_vstnet": 2,
              "arcface": 2, "lama": 4, "bopbtl": 4, "ddcolor": 4, "photo": 30, "lowvram": 0, "novram": 0},
}
"""Seconds per kind of row, building the networks included: on one H100 from the arithmetic (no GPU
was lent when this was written: BOPBTL's 1.2 PFLOP of 12 MP attention is the guess that matters), on
2 shared CPU cores, one thread, as measured."""


@dataclass(frozen=True)
class Sizes:
    name: str
    face: int
    """Side of the faces the UNet samples."""
    unet: FaceUNetConfig
    face_steps: int
    """Steps per stage of a whole face at batch 1 ..."""
    batch_steps: int
    """... and at batch 4."""
    prior: int
    """Side of the faces and images the priors take."""
    photo: tuple[int, int]
    """(height, width) of the whole photo."""
    global_photo: bool
    """BOPBTL on the whole photo too (its attention grows with the square of the pixels)."""
    job_steps: int | None
    """The whole-photo job's sampler steps (None: the workflow's own)."""
    job_crop: int | None
    """The whole-photo job's face size (None: the workflow's own, 512)."""
    released_sizes: bool
    """Networks at their released sizes where the builders allow it."""


FULL = Sizes("full", 512, FaceUNetConfig.ffhq512(), DEFAULT_STEPS, 25, 512, LARGER["12 MP"], True, None, None, True)
SMALL = Sizes("small", 32, TINY_FACE_UNET, 2, 2, 128, (256, 384), False, 2, 64, False)


@dataclass
class Row:
    key: str
    what: str
    dtype: str = "fp32"
    batch: int = 1
    size: str = ""
    seconds: float | None = None
    peak_mib: float | None = None
    check: str = "ok"

    @property
    def failed(self) -> bool:
        return self.check not in ("ok", "OOM", "not run")


def table_line(cells) -> str:
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def print_header(device: torch.device) -> None:
    memory = "peak VRAM (MiB)" if device.type == "cuda" else "peak working memory (MiB)"
    print(table_line(("what", "dtype", "batch", "size", "seconds", memory, "check")))
    print(table_line(("---",) * 7), flush=True)


def print_row(row: Row) -> None:
    time_s = "-" if row.seconds is None else f"{row.seconds:.3f}" if row.seconds < 10 else f"{row.seconds:.1f}"
    peak = "-" if row.peak_mib is None else f"{row.peak_mib:.0f}"
    print(table_line((f"{row.key}: {row.what}", row.dtype, row.batch, row.size, time_s, peak, row.check)), flush=True)


def size_label(height: int, width: int) -> str:
    pixels = height * width
    return f"{width}x{height}" if pixels < 500_000 else f"{pixels / 1e6:.1f} MP {width}x{height}"


# Checks

def _leaves(value) -> Iterator[torch.Tensor | np.ndarray]:
    """Every tensor and array in nested outputs (lists, tuples, dicts, dataclasses)."""
    if isinstance(value, (torch.Tensor, np.ndarray)):
        yield value
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _leaves(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif is_dataclass(value) and not isinstance(value, type):
        for field in fields(value):
            yield from _leaves(getattr(value, field.name))


def _not_finite(leaf) -> bool:
    if isinstance(leaf, np.ndarray):
        return leaf.dtype.kind in "fc" and not np.isfinite(leaf).all()
    return (leaf.is_floating_point() or leaf.is_complex()) and not bool(torch.isfinite(leaf).all())


def verdict(outputs, modules: list[torch.nn.Module], device: torch.device) -> str:
    """"ok", or what is wrong: an output not finite, a tensor off the requested device (arrays are
    the CPU's by their API and are only checked for finiteness)."""
    leaves = list(_leaves(outputs))
    problems = []
    if any(_not_finite(leaf) for leaf in leaves):
        problems.append("NaN")
    tensors = [leaf for leaf in leaves if isinstance(leaf, torch.Tensor)]
    tensors += [tensor for module in modules for tensor in (*module.parameters(), *module.buffers())]
    if any(tensor.device.type != device.type for tensor in tensors):
        problems.append("device mismatch")
    return ", ".join(problems) or "ok"


def failure(error: BaseException) -> str:
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return "OOM"
    text = " ".join(str(error).split())
    return f"error: {type(error).__name__}: {text[:120]}".replace("|", "/")


Work = Callable[[], tuple[object, list[torch.nn.Module]]]
"""One row's computation: returns its outputs and the networks it ran."""


def measure(row: Row, work: Work, device: torch.device) -> Row:
    """Runs `work` once, timed and under the working-memory count, and checks what it gave."""
    result = {}

    def call() -> None:
        result["elapsed"] = seconds(lambda: result.setdefault("value", work()), device)
    try:
        row.peak_mib = WorkingMemory(device).peak_mib(call)
        row.seconds = result["elapsed"]
        row.check = verdict(*result["value"], device)
    except Exception as error:  # noqa: BLE001: the row reports it, the check goes on
        row.check = failure(error)
    result.clear()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


# The face UNet: a guided step and a whole face

def guidances(size: int, batch: int, device: torch.device):
    """Stage 1's and stage 2's guidance for `batch` copies of bench_guided_step's synthetic face."""
    face, scratch, labels = (value.expand(batch, *value.shape[1:]).contiguous()
                             for value in synthetic_inputs(size, device))
    stage1 = PseudoReferenceGuidance(degraded=face, scratch=scratch)
    stage2 = SelectiveGuidance(coarse=face, pseudo_reference=face, masks=selective_masks(scratch, labels),
                               colour_target=face)
    return stage1, stage2


def guided_step(model, guidance, x: torch.Tensor, sigmas: torch.Tensor, t: int = 200) -> torch.Tensor:
    """One step from timestep t (below T1 for stage 2: structure and colour terms)."""
    grid = torch.stack([sigmas[t], sigmas[t - 1]]).float()
    return sample_ssdiff(model, x * (1 + grid[0] ** 2).sqrt(), grid, {"model_options": {}, "seed": 0},
                         guidance=guidance, discrete_sigmas=sigmas)


def whole_face(model, stages, x: torch.Tensor, sigmas: torch.Tensor, steps: int) -> list[torch.Tensor]:
    """Stage 1 then stage 2, `steps` respaced steps each, as bench_guided_step's --whole-face."""
    results = []
    for guidance in stages:
        grid = respaced_sigmas(steps, sigmas)
        results.append(sample_ssdiff(model, x * (1 + grid[0] ** 2).sqrt(), grid, {"model_options": {}, "seed": 0},
                                     guidance=guidance, discrete_sigmas=sigmas))
    return results


def face_rows(sizes: Sizes, device: torch.device, wanted: set[str], steps: int | None) -> Iterator[Row]:
    """Per dtype and batch: a guided step, then a whole face at as many steps as fit FACE_ROW_SECONDS
    by the step's time (or `steps`)."""
    torch.manual_seed(0)
    try:
        unet32 = FaceUNet(sizes.unet).eval().requires_grad_(False).to(device)
    except Exception as error:  # noqa: BLE001
        yield Row("step", "guided SSDiff step, building the face UNet", check=failure(error))
        return
    sigmas = discrete_sigmas()
    label = f"{sizes.face}x{sizes.face}"
    for name, dtype in DTYPES.items():
        unet = unet32.to(dtype)
        model = host_like_model(unet, sigmas, dtype)
        for batch in BATCHES:
            stages = guidances(sizes.face, batch, device)
            x = torch.randn(batch, 3, sizes.face, sizes.face, device=device)
            step_row = Row("step", "guided SSDiff step (stage 2, t < T1)", name, batch, label)
            with torch.inference_mode():
                if device.type == "cuda":
                    try:
                        guided_step(model, stages[1], x, sigmas)  # warm-up: kernels chosen, memory cached
                    except Exception as error:  # noqa: BLE001
                        step_row.check = failure(error)
                if step_row.check == "ok":
                    measure(step_row, lambda: (guided_step(model, stages[1], x, sigmas), [unet]), device)
                if "step" in wanted:
                    yield step_row
                if "face" not in wanted:
                    continue
                face_steps = steps or (sizes.face_steps if batch == 1 else sizes.batch_steps)
                if step_row.seconds and not steps:
                    face_steps = max(2, min(face_steps, int(FACE_ROW_SECONDS / (2 * step_row.seconds))))
                face_row = Row("face", f"whole face, stage 1 + stage 2, 2 x {face_steps} steps", name, batch, label)
                yield measure(face_row, lambda: (whole_face(model, stages, x, sigmas, face_steps), [unet]), device)
    unet32.float()


# The priors

def photo_inputs(sizes: Sizes, device: torch.device) -> Iterator[tuple[str, torch.Tensor]]:
    """(size label, 1 x 3 x H x W photo in [0, 1] on the device): a square at the priors' size, then
    the whole photo."""
    for height, width in ((sizes.prior, sizes.prior), sizes.photo):
        yield size_label(height, width), shaded_photo(height, width).to(device)


def faces(sizes: Sizes, device: torch.device) -> torch.Tensor:
    """1 x 3 x S x S face in [0, 1] on the device (bench_guided_step's synthetic face)."""
    return (synthetic_inputs(sizes.prior, device)[0] + 1) / 2


def load_file(path: Path) -> dict[str, torch.Tensor]:
    from comfyui_ssdiff.models.state_dicts import unwrap_state_dict

    return unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))


def scratch_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.models.scratch_detection import ScratchUNet, ScratchUNetConfig
    from comfyui_ssdiff.priors.scratch import detect_scratch_probability

    torch.manual_seed(0)
    network = ScratchUNet.from_state_dict(ScratchUNet(ScratchUNetConfig()).state_dict()).to(device)
    for label, image in photo_inputs(sizes, device):
        yield label, lambda image=image: (detect_scratch_probability(network, image), [network])


def detector_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from facexlib.detection.retinaface import RetinaFace

    from comfyui_ssdiff.models import retinaface
    from comfyui_ssdiff.priors.arrays import image_array
    from comfyui_ssdiff.priors.face_detection import detect_faces, retinaface_detector

    torch.manual_seed(0)
    state_dict = RetinaFace(network_name="resnet50", device=torch.device("cpu")).state_dict()
    network = retinaface.build(state_dict, device)
    detector = retinaface_detector(network)
    for label, image in photo_inputs(sizes, device):
        yield label, lambda image=image: (detect_faces(detector, image_array(image[0])), [network])


def parser_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.models.face_parsing import face_parser_from_state_dict
    from comfyui_ssdiff.priors.parsing import FaceParser, parse_faces
    from harness.tiny_models import save_face_parser

    network, backend = face_parser_from_state_dict(load_file(save_face_parser(work / "resnet34.pt", "resnet34")))
    parser, images = FaceParser(network.to(device), backend), faces(sizes, device)
    yield f"{sizes.prior}x{sizes.prior}", lambda: (parse_faces(parser, images), [parser.network])


def codeformer_network(sizes: Sizes) -> torch.nn.Module:
    """The released CodeFormer (9-layer transformer, 1024 codes), or the harness's tiny one."""
    from spandrel_extra_arches.architectures.CodeFormer import CodeFormer

    from harness.tiny_models import tiny_codeformer

    torch.manual_seed(0)
    return CodeFormer().eval() if sizes.released_sizes else tiny_codeformer(face_size=sizes.prior)


def codeformer_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.models import face_restorers
    from comfyui_ssdiff.priors.coarse import coarse_restore

    restorer = face_restorers.build(codeformer_network(sizes).state_dict())
    restorer.network.to(device)
    images = faces(sizes, device)
    yield f"{sizes.prior}x{sizes.prior}", lambda: (coarse_restore(restorer, images, restorer.face_size),
                                                   [restorer.network])


def cap_vstnet_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.models.cap_vstnet import RevResNet, RevResNetConfig
    from comfyui_ssdiff.priors.cap_vstnet_transfer import CapVstnetTransfer

    torch.manual_seed(0)
    network = RevResNet.from_state_dict(RevResNet(RevResNetConfig.photorealistic()).state_dict()).to(device)
    transfer = CapVstnetTransfer(network)
    content = faces(sizes, device) * 2 - 1
    region = torch.zeros_like(content[:, :1], dtype=torch.bool)
    region[..., sizes.prior // 4:, :] = True  # below the forehead
    yield f"{sizes.prior}x{sizes.prior}", lambda: (transfer(content, content.flip(-1), region), [network])


def arcface_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.models import face_recognition
    from comfyui_ssdiff.priors.identity import identity_embedder
    from harness.tiny_models import save_arcface

    network = face_recognition.build(load_file(save_arcface(work / "arcface.pth"))).to(device)
    embed, images = identity_embedder(network), faces(sizes, device) * 2 - 1

    def run():
        with torch.no_grad():
            return embed(images), [network]
    yield f"{sizes.prior}x{sizes.prior}", run


def lama_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.priors.inpainting import fill
    from harness.tiny_models import big_lama

    network = big_lama().to(device)
    for label, image in photo_inputs(sizes, device):
        mask = torch.from_numpy(damage(*image.shape[-2:], DAMAGE)).float()[None, None].to(device)
        yield label, lambda image=image, mask=mask: (fill(image, mask, "lama", network), [network])


def bopbtl_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.priors.global_restoration import restore_global

    networks = random_networks(device)
    modules = [networks.encoder, networks.mapping, networks.decoder]
    shapes = [(sizes.prior, sizes.prior)] + ([sizes.photo] if sizes.global_photo else [])
    for height, width in shapes:
        image, mask = photo_and_mask(height, width, device)
        yield size_label(height, width), lambda image=image, mask=mask: (restore_global(networks, image, mask),
                                                                         modules)


def ddcolor_rows(sizes: Sizes, device: torch.device, work: Path) -> Iterator[tuple[str, Work]]:
    from comfyui_ssdiff.models import ddcolor
    from comfyui_ssdiff.priors.colourise import colourise
    from harness.tiny_ddcolor import ddcolor_state_dict, tiny_ddcolor

    released = {"num_queries": 100, "dec_layers": 9} if sizes.released_sizes else {}
    network = ddcolor.build(ddcolor_state_dict(tiny_ddcolor(**released)), input_size=sizes.prior).to(device)
    for label, image in photo_inputs(sizes, device):
        yield label, lambda image=image: (colourise(network, image), [network])


PRIORS = {"scratch": ("scratch detector (detect_scratch_probability)", scratch_rows),
          "detector": ("RetinaFace ResNet-50 (detect_faces)", detector_rows),
          "parser": ("face parser, BiSeNet ResNet-34 (parse_faces)", parser_rows),
          "codeformer": ("CodeFormer (coarse_restore)", codeformer_rows),
          "cap_vstnet": ("CAP-VSTNet photorealistic (colour transfer)", cap_vstnet_rows),
          "arcface": ("ArcFace IR-SE-50 (identity embedder)", arcface_rows),
          "lama": (f"LaMa big-lama (fill, {DAMAGE:.0%} damage)", lama_rows),
          "ddcolor": ("DDColor ConvNeXt-T (colourise)", ddcolor_rows),
          "bopbtl": ("BOPBTL global restoration, scratch mode (restore_global)", bopbtl_rows)}
"""In the order they run: BOPBTL last, its whole-photo attention being the longest row."""


def prior_rows(key: str, sizes: Sizes, device: torch.device, work: Path) -> Iterator[Row]:
    what, rows = PRIORS[key]
    try:
        for label, run in rows(sizes, device, work):
            yield measure(Row(key, what, size=label), run, device)
    except Exception as error:  # noqa: BLE001: building the network failed
        yield Row(key, f"{what}, building it", check=failure(error))
    if device.type == "cuda":
        torch.cuda.empty_cache()


# The whole photo, headless

WORKFLOW = REPO / "shipped_workflows" / "whole_photo_restoration_api.json"
SAMPLES = REPO / "assets" / "sample"
PHOTO = SAMPLES / "ssdiff_sample_old_photo.png"


def _released_codeformer(path: Path) -> Path:
    torch.save({"params_ema": codeformer_network(FULL).state_dict()}, path)
    return path


def _released_cap_vstnet(path: Path) -> Path:
    from comfyui_ssdiff.models.cap_vstnet import RevResNet, RevResNetConfig

    torch.manual_seed(0)
    torch.save({"state_dict": RevResNet(RevResNetConfig.photorealistic()).state_dict()}, path)
    return path


def _released_face_unet(path: Path) -> Path:
    from harness.tiny_models import save_face_ddpm

    torch.manual_seed(0)
    return save_face_ddpm(FaceUNet(FaceUNetConfig.ffhq512()), path)


RELEASED_SIZE_STAND_INS = {
    "SSDiffFaceDiffusionLoader": ("ckpt_name", "ssdiff", "gpu_check_ffhq512.pth", _released_face_unet),
    "SSDiffFaceRestorerLoader": ("model_name", "facerestore_models", "gpu_check_codeformer.pth", _released_codeformer),
    "SSDiffColourTransferLoader": ("model_name", "ssdiff", "gpu_check_cap_vstnet.pt", _released_cap_vstnet),
}
"""Random networks at the released sizes that the whole-photo job loads instead of the main job's
tiny stand-ins, on a GPU (the others are the job's: MTCNN, a real-size ParseNet, a tiny scratch
detector, whose random masks the shipped mask of the sample replaces)."""


def job_prompt(sizes: Sizes, steps: int | None, models_dir: Path) -> dict:
    """The main job's workflow on the bundled photo, at the check's size; released-size random
    networks written into `models_dir` where the size asks for them."""
    from harness.jobs import set_steps

    prompt = json.loads(WORKFLOW.read_text())
    first_load = next(node for _, node in sorted(prompt.items(), key=lambda item: int(item[0]))
                      if node["class_type"] == "LoadImage")
    first_load["inputs"]["image"] = PHOTO.name
    for node in prompt.values():
        if sizes.job_crop and node["class_type"] == "SSDiffFaceCrop":
            node["inputs"]["crop_size"] = sizes.job_crop
        if sizes.released_sizes and node["class_type"] in RELEASED_SIZE_STAND_INS:
            key, folder, name, write = RELEASED_SIZE_STAND_INS[node["class_type"]]
            (models_dir / folder).mkdir(parents=True, exist_ok=True)
            if not (models_dir / folder / name).exists():
                write(models_dir / folder / name)
            node["inputs"][key] = name
    set_steps(prompt, steps or sizes.job_steps)
    return prompt


class DeviceMemorySampler:
    """The device's used memory, sampled every 0.1 s from a thread: its maximum above the start."""

    def __init__(self, device: torch.device):
        self.device, self.peak, self.running = device, 0, False
        self.thread = threading.Thread(target=self._sample, daemon=True)

    def used(self) -> int:
        free, total = torch.cuda.mem_get_info(self.device)
        return total - free

    def _sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.used())
            time.sleep(0.1)

    def __enter__(self) -> "DeviceMemorySampler":
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            self.base = self.peak = self.used()
            self.running = True
            self.thread.start()
        return self

    def __exit__(self, *_) -> None:
        if self.running:
            self.running = False
            self.thread.join()

    @property
    def peak_mib(self) -> float | None:
        return (self.peak - self.base) / 2 ** 20 if self.device.type == "cuda" else None


def photo_row(sizes: Sizes, device: torch.device, steps: int | None, threads: int | None, work: Path,
              key: str = "photo") -> Row:
    """The README's main job in a headless ComfyUI on the requested device (scripts/run_main_job.py's
    steps, with the server's --cpu dropped on CUDA), under the memory option of `key` (MEMORY_MODES);
    its time is the prompt's, ComfyUI's start aside."""
    import requests

    from harness.headless import ComfyServer, default_host
    from harness.jobs import with_shipped_scratch_masks, with_stand_ins

    crop, server = sizes.job_crop or 512, None
    option = MEMORY_MODES.get(key)
    row = Row(key, "whole-photo workflow, headless ComfyUI" + (f", {option}" if option else ""),
              size=f"{PHOTO.name}, {crop} px faces")
    if option and device.type != "cuda":
        row.check = "not run"
        row.what += " (ComfyUI turns it off on the CPU)"
        return row
    try:
        host = default_host()
        if not (host / "main.py").exists():
            raise FileNotFoundError(f"no ComfyUI host at {host}: run scripts/setup_host.sh")
        # Under a memory option the job checks placement, not speed: 20 steps unless --steps says.
        prompt = job_prompt(sizes, steps or (MEMORY_MODE_STEPS if option else None), work / "released_size_models")
        row.what += f", {next(node['inputs']['steps'] for node in prompt.values() if 'steps' in node['inputs'])} steps"
        inputs = [path for path in SAMPLES.iterdir() if path.is_file()]
        models_root, replacements = with_stand_ins(prompt, [host / "models", work / "released_size_models"],
                                                   work / "released_size_models", work / key)
        with_shipped_scratch_masks(prompt, replacements, inputs)
        server = ComfyServer(host, work / key / "server", models_root, threads=threads)
        if device.type == "cuda":
            server.command.remove("--cpu")
        if option:
            server.command.append(option)
        with DeviceMemorySampler(device) as sampler:
            started = time.perf_counter()
            with server:
                row.what += f" (its start, {time.perf_counter() - started:.0f} s, not counted)"
                for path in inputs:
                    shutil.copy(path, server.input_dir / path.name)
                started = time.perf_counter()
                entry = server.run(prompt, timeout=1800)
                row.seconds = time.perf_counter() - started
                devices = requests.get(f"{server.url}/system_stats", timeout=10).json()["devices"]
                written = server.output_images(entry)
        row.peak_mib = sampler.peak_mib
        problems = []
        if "invalid value encountered" in server.log_text():
            problems.append("NaN")
        if not devices or devices[0]["type"] != device.type:
            problems.append("device mismatch")
        if not written:
            problems.append("error: no image written")
        row.check = ", ".join(problems) or "ok"
    except Exception as error:  # noqa: BLE001
        row.check = failure(error)
        if server is not None:
            print(f"the whole-photo job's server log, its end:\n{server.log_text()[-4000:]}", file=sys.stderr)
    return row


# The check

def choose_device(asked: str) -> tuple[torch.device, str | None]:
    """The device and, for the CPU, the first line saying why."""
    if asked == "cuda" or (asked == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            sys.exit("--device cuda: torch sees no CUDA device")
        return torch.device("cuda"), None
    if asked == "cpu" and torch.cuda.is_available():
        return torch.device("cpu"), "--device cpu: running the same checks on the CPU at a small size"
    return torch.device("cpu"), "no CUDA device: running the same checks on the CPU at a small size"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--small", action="store_true", help="the small size also on a GPU")
    parser.add_argument("--steps", type=int, help="steps per stage of the whole-face rows and the whole-photo job")
    parser.add_argument("--rows", default=",".join(ROWS), help=f"comma list of {', '.join(ROWS)}")
    parser.add_argument("--threads", type=int, help="CPU threads, also the headless ComfyUI's (default: 1 on the "
                                                    "CPU, torch's own with CUDA)")
    options = parser.parse_args()
    wanted = set(options.rows.split(","))
    if wanted - set(ROWS):
        parser.error(f"unknown rows {', '.join(sorted(wanted - set(ROWS)))}; choose from {', '.join(ROWS)}")
    device, cpu_line = choose_device(options.device)
    sizes = SMALL if options.small or device.type == "cpu" else FULL
    threads = options.threads or (1 if device.type == "cpu" else None)
    if threads:
        torch.set_num_threads(threads)
    if cpu_line:
        print(cpu_line)
    # The random networks make the priors warn by design (faces below the detector's confidence, ...).
    logging.disable(logging.WARNING)
    estimate = sum(ESTIMATED_SECONDS[sizes.name][key] for key in wanted)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"device {device} ({where}), torch {torch.__version__}, {sizes.name} size: faces {sizes.face} px, priors "
          f"{sizes.prior} px, photo {size_label(*sizes.photo)}; estimated total about {estimate / 60:.1f} min "
          f"({'one H100' if sizes is FULL else '2 CPU cores'})\n")
    print_header(device)
    started, rows = time.perf_counter(), []
    with tempfile.TemporaryDirectory(prefix="ssdiff-gpu-check-") as folder:
        work = Path(folder)
        sections = []
        if wanted & {"step", "face"}:
            sections.append(lambda: face_rows(sizes, device, wanted, options.steps))
        for key in ("photo", *MEMORY_MODES):
            if key in wanted:
                sections.append(lambda key=key: iter([photo_row(sizes, device, options.steps, threads, work, key)]))
        sections += [lambda key=key: prior_rows(key, sizes, device, work) for key in PRIORS if key in wanted]
        for section in sections:
            for row in section():
                print_row(row)
                rows.append(row)
    failed = [row for row in rows if row.failed]
    print(f"\n{len(rows)} rows in {time.perf_counter() - started:.0f} s; "
          f"{'all ok' if not failed else f'{len(failed)} failed'}"
          + (f"; {sum(row.check == 'OOM' for row in rows)} out of memory" if any(row.check == "OOM" for row in rows)
             else "")
          + (f"; {sum(row.check == 'not run' for row in rows)} not run here" if any(row.check == "not run"
                                                                                     for row in rows) else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
