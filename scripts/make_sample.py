"""Writes assets/sample/: a small synthetic aged face for the README's main job.

The face, its scratch mask and its parsing are the synthetic 64 x 64 test face of
tests/fixtures/golden (drawn from ellipses and rectangles per CelebAMask-HQ region, faded, sepia,
with bright scratches; no photograph of anyone), enlarged to 256 x 256; the "photo" puts that face,
turned by a few degrees, on a faded sepia card for the whole-photo workflow. Run from the repo root:
    python scripts/make_sample.py
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from safetensors.numpy import load_file

REPO = Path(__file__).resolve().parent.parent
SIZE = 256


def main() -> None:
    data = load_file(str(REPO / "tests" / "fixtures" / "golden" / "inputs.safetensors"))
    target = REPO / "assets" / "sample"
    target.mkdir(parents=True, exist_ok=True)
    Image.fromarray(data["y_u8"]).resize((SIZE, SIZE), Image.BICUBIC).save(target / "ssdiff_sample_face.png")
    Image.fromarray(data["mask_u8"]).resize((SIZE, SIZE), Image.BILINEAR).save(
        target / "ssdiff_sample_scratch_mask.png")
    face = Image.fromarray(data["y_u8"]).resize((SIZE, SIZE), Image.BICUBIC)
    card = Image.new("RGB", (400, 320), (201, 184, 150))
    card.paste(face.rotate(6, resample=Image.BICUBIC, fillcolor=(201, 184, 150)), (80, 34))
    card.save(target / "ssdiff_sample_photo.png")
    labels = data["labels"][0].astype(np.uint8)
    Image.fromarray(labels, mode="L").resize((SIZE, SIZE), Image.NEAREST).save(
        target / "ssdiff_sample_parsing.png")


if __name__ == "__main__":
    main()
