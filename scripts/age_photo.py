"""Ages a public-domain portrait into a synthetic old photo, with the ground truth of its damage.

Source: scikit-image's `astronaut.png` (NASA portrait of the astronaut Eileen Collins, public
domain), read from the installed scikit-image package (never downloaded; its SHA-256 is checked).
The degradation is this script's own, deterministic for a given seed, in this order:

  1. grayscale      luminance Y = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601)
  2. blur           Gaussian, sigma BLUR_SIGMA px (a soft lens and print)
  3. fading         contrast FADE_CONTRAST around lifted blacks (Y' = FADE_FLOOR + FADE_CONTRAST Y),
                    plus uneven fading: a smooth random field (white noise blurred by
                    UNEVEN_SIGMA px, scaled to [-1, 1]) times UNEVEN_AMOUNT
  4. sepia          Y' mapped linearly from SEPIA_DARK (Y' = 0) to SEPIA_LIGHT (Y' = 1)
  5. grain          one Gaussian noise field for all channels, sigma GRAIN_SIGMA, blurred by
                    GRAIN_BLUR px (film grain, not pixel noise)
  6. scratches      SCRATCHES quadratic Bezier curves across the photo (FACE_SCRATCHES of them
                    through the face box FACE_BOX), widths SCRATCH_WIDTH px, anti-aliased (4x
                    supersampled), blended towards SCRATCH_COLOUR with opacity SCRATCH_OPACITY;
                    plus DUST bright or dark specks, radii DUST_RADIUS px
  7. quantisation   8 bits per channel, PNG

The scratch mask (`*_scratches.png`) is 255 where the damage of step 6 covers at least
MASK_THRESHOLD of a pixel, else 0: the ground truth for SSDiff Scratch Mask.

    python scripts/age_photo.py            # writes assets/sample/ssdiff_sample_old_photo*.png + PROVENANCE.md
    python scripts/age_photo.py --check    # regenerates in memory, compares with the stored files
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parent.parent
TARGET = REPO / "assets" / "sample"
PHOTO_NAME, MASK_NAME = "ssdiff_sample_old_photo.png", "ssdiff_sample_old_photo_scratches.png"

SOURCE_FILE = "astronaut.png"
SOURCE_SHA256 = "88431cd9653ccd539741b555fb0a46b61558b301d4110412b5bc28b5e3ea6cb5"
"""scikit-image 0.26's data/astronaut.png, as listed in its data registry."""

SEED = 1923
BLUR_SIGMA = 1.2
FADE_FLOOR, FADE_CONTRAST = 0.16, 0.70
UNEVEN_SIGMA, UNEVEN_AMOUNT = 48.0, 0.06
SEPIA_DARK, SEPIA_LIGHT = (0.20, 0.13, 0.08), (0.98, 0.90, 0.74)
GRAIN_SIGMA, GRAIN_BLUR = 0.045, 0.7
SCRATCHES, FACE_SCRATCHES = 10, 3
FACE_BOX = (170, 40, 330, 240)
"""(left, top, right, bottom) px: the face in the source photo."""
SCRATCH_WIDTH = (0.8, 2.6)
SCRATCH_OPACITY = (0.75, 1.0)
SCRATCH_COLOUR = (0.97, 0.95, 0.90)
DUST, DUST_RADIUS = 40, (0.8, 2.2)
MASK_THRESHOLD = 0.25
SUPERSAMPLE = 4


def source_photo() -> np.ndarray:
    """The portrait as H x W x 3 floats in [0, 1], from the installed scikit-image."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or spec.origin is None:
        raise SystemExit("scikit-image is not installed: pip install scikit-image (see requirements-dev.txt)")
    path = Path(spec.origin).parent / "data" / SOURCE_FILE
    if not path.exists():
        raise SystemExit(f"{path} is missing: this scikit-image does not ship {SOURCE_FILE}")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        raise SystemExit(f"{path} has SHA-256 {digest}, expected {SOURCE_SHA256}")
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB"), dtype=np.float64) / 255.0


def bezier(points: np.ndarray, samples: int) -> np.ndarray:
    t = np.linspace(0.0, 1.0, samples)[:, None]
    return (1 - t) ** 2 * points[0] + 2 * (1 - t) * t * points[1] + t ** 2 * points[2]


def coverage(shape: tuple[int, int], strokes: list[tuple[np.ndarray, float]]) -> np.ndarray:
    """Anti-aliased coverage (0..1) of polylines of given widths, SUPERSAMPLE x supersampled."""
    height, width = shape[0] * SUPERSAMPLE, shape[1] * SUPERSAMPLE
    result = np.zeros((height, width))
    for points, stroke_width in strokes:
        grid = np.ones((height, width), dtype=bool)
        scaled = np.round(points * SUPERSAMPLE - 0.5).astype(int)
        inside = (scaled[:, 0] >= 0) & (scaled[:, 0] < width) & (scaled[:, 1] >= 0) & (scaled[:, 1] < height)
        grid[scaled[inside, 1], scaled[inside, 0]] = False
        if grid.all():
            continue
        distance = ndimage.distance_transform_edt(grid)
        result = np.maximum(result, np.clip(stroke_width * SUPERSAMPLE / 2 + 0.5 - distance, 0.0, 1.0))
    return result.reshape(shape[0], SUPERSAMPLE, shape[1], SUPERSAMPLE).mean(axis=(1, 3))


def disc(shape: tuple[int, int], centre: np.ndarray, radius: float) -> np.ndarray:
    """Coverage (0..1) of a disc, SUPERSAMPLE x supersampled."""
    offsets = (np.arange(SUPERSAMPLE) + 0.5) / SUPERSAMPLE
    ys = (np.arange(shape[0])[:, None] + offsets[None, :]).ravel()
    xs = (np.arange(shape[1])[:, None] + offsets[None, :]).ravel()
    inside = ((xs[None, :] - centre[0]) ** 2 + (ys[:, None] - centre[1]) ** 2) <= radius ** 2
    return inside.reshape(shape[0], SUPERSAMPLE, shape[1], SUPERSAMPLE).mean(axis=(1, 3))


def damage(shape: tuple[int, int], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Step 6: (opacity of the bright damage, opacity of the dark specks), each H x W in 0..1."""
    height, width = shape
    strokes = []
    for index in range(SCRATCHES):
        if index < FACE_SCRATCHES:  # through the face: a point inside the face box, ends far apart
            middle = rng.uniform((FACE_BOX[0], FACE_BOX[1]), (FACE_BOX[2], FACE_BOX[3]))
        else:
            middle = rng.uniform((0, 0), (width, height))
        angle = rng.uniform(0, np.pi)
        length = rng.uniform(0.35, 0.9) * max(height, width)
        direction = np.array([np.cos(angle), np.sin(angle)])
        bend = rng.normal(0, 0.08 * length) * np.array([-direction[1], direction[0]])
        control = np.stack([middle - direction * length / 2, middle + bend, middle + direction * length / 2])
        points = bezier(control, samples=int(length * SUPERSAMPLE * 4))
        opacity = rng.uniform(*SCRATCH_OPACITY)
        strokes.append((points, rng.uniform(*SCRATCH_WIDTH), opacity))
    bright = np.zeros(shape)
    for points, stroke_width, opacity in strokes:
        bright = np.maximum(bright, opacity * coverage(shape, [(points, stroke_width)]))
    dark = np.zeros(shape)
    for _ in range(DUST):
        centre = rng.uniform((0, 0), (width, height))
        radius = rng.uniform(*DUST_RADIUS)
        speck = disc(shape, centre, radius)
        if rng.uniform() < 0.7:
            bright = np.maximum(bright, speck)
        else:
            dark = np.maximum(dark, speck)
    return bright, dark


def age(photo: np.ndarray, seed: int = SEED) -> tuple[np.ndarray, np.ndarray]:
    """(aged photo H x W x 3 uint8, scratch mask H x W uint8 0/255)."""
    rng = np.random.default_rng(seed)
    shape = photo.shape[:2]
    luminance = photo @ np.array([0.299, 0.587, 0.114])                                    # 1
    luminance = ndimage.gaussian_filter(luminance, BLUR_SIGMA, mode="reflect")              # 2
    uneven = ndimage.gaussian_filter(rng.standard_normal(shape), UNEVEN_SIGMA, mode="reflect")
    uneven = 2 * (uneven - uneven.min()) / (uneven.max() - uneven.min()) - 1
    faded = FADE_FLOOR + FADE_CONTRAST * luminance + UNEVEN_AMOUNT * uneven                 # 3
    dark_tone, light_tone = np.array(SEPIA_DARK), np.array(SEPIA_LIGHT)
    aged = dark_tone + np.clip(faded, 0, 1)[..., None] * (light_tone - dark_tone)          # 4
    grain = ndimage.gaussian_filter(rng.standard_normal(shape), GRAIN_BLUR, mode="reflect")
    aged = aged + (GRAIN_SIGMA / grain.std()) * grain[..., None]                            # 5
    bright, dark = damage(shape, rng)                                                       # 6
    aged = aged * (1 - bright[..., None]) + np.array(SCRATCH_COLOUR) * bright[..., None]
    aged = aged * (1 - dark[..., None]) + dark_tone * dark[..., None]
    mask = np.maximum(bright, dark) >= MASK_THRESHOLD
    return (np.clip(np.round(aged * 255), 0, 255).astype(np.uint8),                         # 7
            (mask * 255).astype(np.uint8))


PROVENANCE = """# Provenance of `{photo}` and `{mask}`

Written by `scripts/age_photo.py` (run `python scripts/age_photo.py --check` to regenerate them
in memory and compare). Seed {seed}; numpy's PCG64 generator (`numpy.random.default_rng`).

## Source

- `astronaut.png` from the scikit-image package (scikit-image {skimage_version}, `skimage/data/`;
  SHA-256 `{source_sha}`, checked before use), 512 x 512 RGB.
- NASA portrait of the astronaut Eileen Collins, from NASA's Great Images database
  (https://flic.kr/p/r9qvLn). scikit-image documents it as "No known copyright restrictions,
  released into the public domain". NASA photographs are generally not subject to US copyright;
  NASA asks that its insignia not be used to imply endorsement.
- Not a photograph of the FFHQ or CelebA-HQ training sets.

## Degradation (synthetic; every parameter is a constant of the script)

1. Grayscale: Y = 0.299 R + 0.587 G + 0.114 B.
2. Blur: Gaussian, sigma {blur} px (scipy.ndimage, reflected edges).
3. Fading: Y' = {floor} + {contrast} Y, plus {uneven_amount} x a smooth random field (white noise
   blurred by sigma {uneven_sigma} px, scaled to [-1, 1]): contrast lowered, blacks lifted, unevenly.
4. Sepia: RGB = dark + clip(Y', 0, 1) (light - dark), dark = {dark}, light = {light}.
5. Grain: one Gaussian field for the three channels, blurred by sigma {grain_blur} px, scaled
   to standard deviation {grain_sigma}.
6. Scratches: {scratches} quadratic Bezier curves, {face_scratches} of them through the face box
   {face_box} (left, top, right, bottom), lengths 0.35-0.9 x 512 px, widths {width} px,
   anti-aliased at {ss} x supersampling, blended towards {colour} with opacity {opacity}; {dust}
   dust specks of radius {dust_radius} px, 70 % bright (as the scratches) and 30 % dark
   (the sepia dark tone).
7. Rounded to 8 bits, saved as PNG, {size}.

## Files

| file | what | SHA-256 |
|---|---|---|
| `{photo}` | the aged photo (input of the whole-photo workflow) | `{photo_sha}` |
| `{mask}` | ground truth of step 6: 255 where the damage covers >= {threshold} of a pixel ({coverage:.2f} % of the photo) | `{mask_sha}` |

The PNG bytes can differ with another Pillow or zlib; the pixels are what `--check` compares.
"""


def png_bytes(array: np.ndarray) -> bytes:
    import io
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="compare with the stored files; write nothing")
    parser.add_argument("--out", type=Path, default=TARGET, help=f"folder to write (default: {TARGET})")
    args = parser.parse_args()
    photo, mask = age(source_photo())
    if args.check:
        problems = []
        for name, array in ((PHOTO_NAME, photo), (MASK_NAME, mask)):
            with Image.open(args.out / name) as stored:
                difference = np.abs(np.asarray(stored, dtype=np.int16) - array.astype(np.int16)).max()
            if difference > 1:
                problems.append(f"{name}: differs by up to {difference} levels")
        print("\n".join(problems) or "stored files match the script")
        return 1 if problems else 0
    import skimage
    args.out.mkdir(parents=True, exist_ok=True)
    photo_png, mask_png = png_bytes(photo), png_bytes(mask)
    (args.out / PHOTO_NAME).write_bytes(photo_png)
    (args.out / MASK_NAME).write_bytes(mask_png)
    (args.out / "PROVENANCE.md").write_text(PROVENANCE.format(
        photo=PHOTO_NAME, mask=MASK_NAME, seed=SEED, skimage_version=skimage.__version__,
        source_sha=SOURCE_SHA256, blur=BLUR_SIGMA, floor=FADE_FLOOR, contrast=FADE_CONTRAST,
        uneven_amount=UNEVEN_AMOUNT, uneven_sigma=UNEVEN_SIGMA, dark=SEPIA_DARK, light=SEPIA_LIGHT,
        grain_blur=GRAIN_BLUR, grain_sigma=GRAIN_SIGMA, scratches=SCRATCHES, face_scratches=FACE_SCRATCHES,
        face_box=FACE_BOX, width=SCRATCH_WIDTH, ss=SUPERSAMPLE, colour=SCRATCH_COLOUR,
        opacity=SCRATCH_OPACITY, dust=DUST, dust_radius=DUST_RADIUS, threshold=MASK_THRESHOLD,
        size=f"{photo.shape[1]} x {photo.shape[0]} RGB", coverage=100 * (mask > 0).mean(),
        photo_sha=hashlib.sha256(photo_png).hexdigest(), mask_sha=hashlib.sha256(mask_png).hexdigest()))
    print(f"wrote {args.out / PHOTO_NAME}, {args.out / MASK_NAME} and PROVENANCE.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
