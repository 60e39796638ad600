"""Writes the template browser's thumbnails, example_workflows/<name>.jpg (Workflow -> Browse
Templates -> ComfyUI-SSDiff): the photo before and after a real headless run of the workflow,
never a screenshot of the frontend (which shows its "Missing Models" dialog on a machine without
the checkpoints).

For each shipped workflow the script queues `shipped_workflows/<name>_api.json` on one ComfyUI server
(`main.py --cpu`, its own base folder with only this pack in custom_nodes/) with the pack's samples
(assets/sample) in its input folder, and composes, with Pillow, a 640 x 640 JPEG (both frontends
show a thumbnail whole in a square card): the workflow's title, its input photo ("before") and the
image its main SaveImage node wrote ("after"), and a caption that says how the run was made.

Checkpoints are looked up in the host's models/ folders and in --models-dir; each one missing is
replaced as the main job replaces it (harness/jobs.py): the face detector by MTCNN (real weights),
the others by tiny RANDOM networks of the same architecture; the samplers then run `--steps` steps
(default 1) and the thumbnail says, across the "after" photo and in its caption, that the run is no
restoration. With every checkpoint installed the workflows
run as shipped (2 x 100 steps a face: about 14 minutes a face on two CPU cores).

The JPEG's comment (COM segment) records the run as JSON: the workflow, the node and file of the
"before" photo, the node of the "after" one, where each sits in the thumbnail, the stand-ins, the
steps and the ComfyUI version; tests/test_thumbnails.py checks every thumbnail against it.

    .venv/bin/python scripts/make_thumbnails.py [NAME ...] [--models-dir DIR] [--steps N]

About 4 minutes for all seven with the stand-ins on two CPU cores. A developer tool: run it after a
workflow changes what it saves, or with the checkpoints installed for thumbnails of real restorations.
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from harness.headless import ComfyServer, default_host  # noqa: E402
from harness.jobs import set_steps, with_shipped_scratch_masks, with_stand_ins  # noqa: E402
from comfyui_ssdiff.models.files import MODEL_FOLDERS  # noqa: E402

SAMPLE = REPO / "assets" / "sample"
EXAMPLES = REPO / "example_workflows"
SCRIPT = "scripts/make_thumbnails.py"


@dataclass(frozen=True)
class Thumbnail:
    title: str
    before: str
    """The LoadImage node whose photo is shown as "before"."""
    after: str
    """The SaveImage node whose image is shown as "after"."""
    photo: str | None = None
    """The sample the "before" node loads for the thumbnail (None: the workflow's own)."""


OLD_PHOTO = "ssdiff_sample_old_photo.png"
"""The aged portrait of the README's main job: a real face (MTCNN finds it) and real scratches
(with their own mask shipped beside it)."""

THUMBNAILS = {
    "aligned_face_restoration": Thumbnail("SSDiff: aligned face restoration", before="2", after="12"),
    "whole_photo_restoration": Thumbnail("SSDiff: whole old photo", before="1", after="15", photo=OLD_PHOTO),
    "family_album_restoration": Thumbnail("SSDiff: the person, from other photos", before="1", after="15"),
    "colourise_old_photo": Thumbnail("SSDiff: the old photo in colour", before="1", after="15"),
    "sampler_custom_advanced": Thumbnail("SSDiff in SamplerCustomAdvanced", before="2", after="21"),
    "archive_restoration": Thumbnail("SSDiff: an archive, fine-tuned restorer", before="1", after="11",
                                     photo=OLD_PHOTO),
    "iterative_restoration": Thumbnail("SSDiff: iterative restoration", before="2", after="12"),
}

SIZE = (640, 640)
"""Square: both frontends (1.32, 1.49) show a template's thumbnail whole in a square card."""
PANEL_TOP, PANEL, MARGIN = 10, 306, 10
"""Each photo fits a PANEL x PANEL square, the two side by side at the top; the title and the
caption below them (frontend 1.49 puts a "Node graph" badge over the card's top left corner)."""
TITLE_Y = 382
BACKGROUND, INK, MUTED, WARNING = (242, 239, 233), (30, 30, 30), (70, 70, 70), (170, 20, 20)
CAPTION_TOP, CAPTION_SIZE, CAPTION_LINE = 414, 15, 20


def font(size: int) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def fitting_font(text: str, size: int, width: int) -> ImageFont.ImageFont:
    """The default font at `size`, or smaller until `text` is at most `width` pixels wide."""
    while size > 8 and font(size).getlength(text) > width:
        size -= 1
    return font(size)


def fitted(image: Image.Image, box: tuple[int, int, int, int]) -> tuple[Image.Image, tuple[int, int, int, int]]:
    """`image` scaled to fit `box` (aspect kept), and the box it fills, centred in `box`."""
    left, top, right, bottom = box
    scale = min((right - left) / image.width, (bottom - top) / image.height)
    size = (round(image.width * scale), round(image.height * scale))
    x, y = left + (right - left - size[0]) // 2, top + (bottom - top - size[1]) // 2
    return image.convert("RGB").resize(size, Image.LANCZOS), (x, y, x + size[0], y + size[1])


def caption_lines(caption: str, width: int = SIZE[0] - 2 * MARGIN) -> list[str]:
    """`caption` broken into lines of at most `width` pixels in the caption's font."""
    lines: list[str] = []
    for word in caption.split():
        if lines and font(CAPTION_SIZE).getlength(f"{lines[-1]} {word}") <= width:
            lines[-1] = f"{lines[-1]} {word}"
        else:
            lines.append(word)
    return lines


MAX_CAPTION_LINES = (SIZE[1] - CAPTION_TOP) // CAPTION_LINE


def compose(title: str, before: Image.Image, after: Image.Image, after_label: str, caption: str,
            warning: str | None) -> tuple[Image.Image, dict[str, list[int]]]:
    """The thumbnail, and where its parts sit in it ([left, top, right, bottom]): the before and
    after photos and, where there is one, the warning across the bottom of the after photo."""
    canvas = Image.new("RGB", SIZE, BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    draw.text((SIZE[0] // 2, TITLE_Y), title, fill=INK, font=fitting_font(title, 34, SIZE[0] - 2 * MARGIN),
              anchor="mm")
    boxes = {}
    for key, image, left, label in (("before", before, MARGIN, "before"),
                                    ("after", after, SIZE[0] - MARGIN - PANEL, after_label)):
        picture, box = fitted(image, (left, PANEL_TOP, left + PANEL, PANEL_TOP + PANEL))
        canvas.paste(picture, box[:2])
        boxes[key] = list(box)
        draw.text((left + PANEL // 2, PANEL_TOP + PANEL + 24), label, fill=INK, font=fitting_font(label, 24, PANEL),
                  anchor="mm")
    if warning:
        left, _, right, bottom = boxes["after"]
        boxes["warning"] = [left, bottom - 34, right, bottom]
        draw.rectangle(boxes["warning"], fill=(255, 255, 255))
        draw.text(((left + right) // 2, bottom - 17), warning, fill=WARNING,
                  font=fitting_font(warning, 22, right - left - 8), anchor="mm")
    for row, line in enumerate(caption_lines(caption)[:MAX_CAPTION_LINES]):
        draw.text((MARGIN, CAPTION_TOP + CAPTION_LINE * row), line, fill=MUTED, font=font(CAPTION_SIZE))
    return canvas, boxes


def linked_models(roots: list[Path], models_root: Path) -> None:
    """Every checkpoint of `roots` linked into `models_root`'s folders (the stand-ins already there win)."""
    for folder in MODEL_FOLDERS:
        (models_root / folder).mkdir(parents=True, exist_ok=True)
        for root in roots:
            if (root / folder).is_dir():
                for existing in (root / folder).iterdir():
                    if existing.is_file() and not (models_root / folder / existing.name).exists():
                        (models_root / folder / existing.name).symlink_to(existing.resolve())


def caption_for(job: dict, spec: Thumbnail, comfyui: str) -> str:
    """What the thumbnail shows and how the run was made, in words."""
    replacements, steps = job["replacements"], job["steps"]
    random = [replacement.missing for replacement in replacements if replacement.random]
    said = [f"Before: assets/sample/{job['photo']} (node {spec.before}); after: what node {spec.after} "
            f"\u201c{job['prompt'][spec.after]['_meta']['title']}\u201d saved in a headless run of the workflow, "
            f"ComfyUI {comfyui}, CPU, " + (f"{steps} step{'s' if steps != 1 else ''} a sampler." if steps
                                            else "steps as shipped.")]
    said.append(f"No checkpoint installed: tiny RANDOM networks stand in for {', '.join(random)}." if random
                else "The published checkpoints.")
    said += [f"{replacement.instead.split(' (')[0]} (real weights) stands in for {replacement.missing}."
             for replacement in replacements if not replacement.random]
    if job["notes"]:
        said.append("Damage outside the face: where the sample's shipped scratch mask marks it.")
    if random:
        said.append("The faces are not restored: random networks only show what the graph does with the photo.")
    return " ".join(said)


def prepared(name: str, spec: Thumbnail, roots: list[Path], work: Path, steps: int | None) -> dict:
    """The prompt to queue for `name`, with its stand-ins, and what the thumbnail says of it."""
    prompt = json.loads((REPO / "shipped_workflows" / f"{name}_api.json").read_text())
    before = prompt[spec.before]
    if before["class_type"] != "LoadImage" or prompt[spec.after]["class_type"] != "SaveImage":
        raise SystemExit(f"{name}: node {spec.before} must be a LoadImage and {spec.after} a SaveImage")
    if spec.photo:
        before["inputs"]["image"] = spec.photo
    _, replacements = with_stand_ins(prompt, roots, None, work)
    notes = with_shipped_scratch_masks(prompt, replacements, sorted(SAMPLE.glob("*.png")))
    random = any(replacement.random for replacement in replacements)
    steps = steps or (1 if random else None)
    set_steps(prompt, steps)
    return {"prompt": prompt, "replacements": replacements, "notes": notes, "steps": steps, "random": random,
            "photo": before["inputs"]["image"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", default=list(THUMBNAILS), help="workflows (default: all)")
    parser.add_argument("--models-dir", type=Path, help="an extra models folder (with ssdiff/ inside)")
    parser.add_argument("--steps", type=int,
                        help="every sampler's steps (default: 1 where a random stand-in runs, else as shipped)")
    parser.add_argument("--host", type=Path, default=default_host(),
                        help="the ComfyUI root (default: the host setup_host.sh built for this Python)")
    parser.add_argument("--output", type=Path, default=EXAMPLES, help="where the .jpg files go")
    options = parser.parse_args()
    unknown = sorted(set(options.names) - set(THUMBNAILS))
    if unknown:
        raise SystemExit(f"no thumbnail set up for {unknown}: add it to THUMBNAILS")
    roots = [options.host / "models"] + ([options.models_dir] if options.models_dir else [])
    with tempfile.TemporaryDirectory(prefix="ssdiff-thumbnails-") as folder:
        work = Path(folder)
        jobs = {name: prepared(name, THUMBNAILS[name], roots, work, options.steps) for name in options.names}
        linked_models(roots, work / "models")
        # Its own base folder: only this pack runs, and what a workflow saves into the models
        # folders (archive_restoration's fine-tuned restorer) stays in the temporary folder.
        base = work / "base"
        (base / "custom_nodes").mkdir(parents=True)
        (base / "custom_nodes" / "ComfyUI-SSDiff").symlink_to(REPO, target_is_directory=True)
        with ComfyServer(options.host, work / "server", work / "models",
                         extra_args=("--base-directory", str(base))) as server:
            comfyui = requests.get(f"{server.url}/system_stats", timeout=10).json()["system"]["comfyui_version"]
            for image in SAMPLE.glob("*.png"):
                shutil.copy(image, server.input_dir / image.name)
            captions = {name: caption_for(job, THUMBNAILS[name], comfyui) for name, job in jobs.items()}
            for name, caption in captions.items():
                if len(caption_lines(caption)) > MAX_CAPTION_LINES:
                    raise SystemExit(f"{name}: the caption is too long for the thumbnail: {caption}")
            for name, job in jobs.items():
                spec, started = THUMBNAILS[name], time.monotonic()
                try:
                    entry = server.run(job["prompt"], timeout=6 * 3600)
                except Exception:
                    print(server.log_text()[-4000:], file=sys.stderr)
                    raise
                saved = entry["outputs"][spec.after]["images"][0]
                after_path = server.output_dir / saved.get("subfolder", "") / saved["filename"]
                with Image.open(SAMPLE / job["photo"]) as before, Image.open(after_path) as after:
                    thumbnail, boxes = compose(
                        spec.title, before, after, f"after: \u201c{job['prompt'][spec.after]['_meta']['title']}\u201d",
                        captions[name], "random stand-in weights: not a restoration" if job["random"] else None)
                record = {"made_by": SCRIPT, "workflow": f"shipped_workflows/{name}_api.json", "comfyui_version": comfyui,
                          "before": {"node": spec.before, "file": f"assets/sample/{job['photo']}",
                                     "box": boxes["before"]},
                          "after": {"node": spec.after, "box": boxes["after"]}, "warning": boxes.get("warning"),
                          "stand_ins": [str(replacement) for replacement in job["replacements"]] + job["notes"],
                          "random_weights": job["random"], "steps": job["steps"]}
                options.output.mkdir(parents=True, exist_ok=True)
                thumbnail.save(options.output / f"{name}.jpg", quality=90, optimize=True,
                               comment=json.dumps(record).encode())
                print(f"wrote {options.output / name}.jpg ({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
