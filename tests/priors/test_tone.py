"""Face Paste's tone (priors/tone.py, issue 29): a coloured face pasted into a grayscale or sepia
photo takes the photo's colour statistics and keeps its lightness; 'restored' pastes as before;
'auto' tells monochrome and tinted photos from colour ones as documented."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import skimage.data
import torch
from PIL import Image

from conftest import REPO
from comfyui_ssdiff.priors.alignment import AlignedFace, DetectedFace, FaceInfo, paste_face
from comfyui_ssdiff.priors.faces import paste_faces
from comfyui_ssdiff.priors.tone import MONOCHROME_SPREAD, hue_spread, is_monochrome_or_tinted, uses_photo_tone

SEPIA = np.array([[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], np.float32)
SIZE, CROP = 160, 64


def skimage_photo(name: str) -> np.ndarray:
    return getattr(skimage.data, name)().astype(np.float32)[..., :3] / 255


def grayscale(rgb: np.ndarray) -> np.ndarray:
    return np.repeat(rgb @ np.array([0.299, 0.587, 0.114], np.float32), 3).reshape(rgb.shape)


def sepia(rgb: np.ndarray) -> np.ndarray:
    return (grayscale(rgb) @ SEPIA.T).clip(0, 1)


def lab(rgb: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(np.ascontiguousarray(rgb, np.float32), cv2.COLOR_RGB2Lab)


@pytest.mark.parametrize("name, photo, spread", [
    ("grayscale astronaut", lambda: grayscale(skimage_photo("astronaut")), 0.0),
    ("sepia astronaut", lambda: sepia(skimage_photo("astronaut")), 1.0),
    ("the pack's aged sample", lambda: np.asarray(Image.open(REPO / "assets" / "sample" /
                                                             "ssdiff_sample_old_photo.png").convert("RGB"),
                                                  np.float32) / 255, 1.6),
    ("chelsea", lambda: skimage_photo("chelsea"), 3.6),
    ("rocket", lambda: skimage_photo("rocket"), 3.7),
    ("coffee", lambda: skimage_photo("coffee"), 7.7),
    ("astronaut", lambda: skimage_photo("astronaut"), 10.2),
])
def test_the_documented_hue_spreads_and_what_auto_makes_of_them(name, photo, spread):
    assert hue_spread(photo()) == pytest.approx(spread, abs=0.05), name
    assert is_monochrome_or_tinted(photo()) is (spread < MONOCHROME_SPREAD)


def scene(kind: str) -> tuple[torch.Tensor, torch.Tensor, FaceInfo]:
    """A 160 px photo (grayscale, sepia or colour), a colourful restored face of 64 px, and the
    face_info of a crop of the photo's middle, turned by 10 degrees."""
    rng = np.random.default_rng(3)
    base = cv2.resize(skimage_photo("astronaut"), (SIZE, SIZE), interpolation=cv2.INTER_AREA)
    photo = {"grayscale": grayscale(base), "sepia": sepia(base), "colour": base}[kind]
    face = cv2.resize(skimage_photo("coffee"), (CROP, CROP), interpolation=cv2.INTER_AREA)
    face = (face + rng.normal(0, 0.02, face.shape)).clip(0, 1).astype(np.float32)
    affine = cv2.getRotationMatrix2D((SIZE / 2, SIZE / 2), 10, CROP / 100)
    affine[:, 2] += CROP / 2 - SIZE / 2
    detected = DetectedFace((0.0, 0.0, 1.0, 1.0), 1.0, np.zeros((5, 2), np.float32))
    info = FaceInfo(CROP, ((SIZE, SIZE),), (AlignedFace(0, affine.astype(np.float64), detected),))
    return (torch.from_numpy(photo).permute(2, 0, 1)[None], torch.from_numpy(face).permute(2, 0, 1)[None], info)


def under_crop(photo: torch.Tensor, info: FaceInfo) -> np.ndarray:
    rgb = photo[0].permute(1, 2, 0).numpy()
    return cv2.warpAffine(rgb, info.faces[0].affine, (CROP, CROP), flags=cv2.INTER_LINEAR)


@pytest.mark.parametrize("kind", ["grayscale", "sepia"])
def test_photo_tone_gives_the_face_the_photos_colour_statistics_and_keeps_its_lightness(kind):
    photo, face, info = scene(kind)
    restored = paste_faces(photo, face, info, "restored")
    toned = paste_faces(photo, face, info, "photo")
    target = lab(under_crop(photo, info))[8:-8, 8:-8, 1:].reshape(-1, 2)
    def gaps(pasted: torch.Tensor) -> tuple[float, float]:
        chroma = lab(under_crop(pasted, info))[8:-8, 8:-8, 1:].reshape(-1, 2)
        return (float(np.abs(chroma.mean(0) - target.mean(0)).max()),
                float(np.abs(chroma.std(0) - target.std(0)).max()))

    assert max(gaps(toned)) < 1.5, (kind, gaps(toned))
    assert min(gaps(restored)) > 10, (kind, gaps(restored))
    lightness = lab(under_crop(toned, info))[8:-8, 8:-8, 0]
    assert np.abs(lightness - lab(under_crop(restored, info))[8:-8, 8:-8, 0]).mean() < 0.5


@pytest.mark.parametrize("kind", ["grayscale", "sepia", "colour"])
def test_restored_tone_pastes_exactly_as_before_and_only_the_pasted_region_changes(kind):
    photo, face, info = scene(kind)
    before = paste_face(photo[0].permute(1, 2, 0).numpy(), face[0].permute(1, 2, 0).numpy(), info.faces[0].affine)
    restored = paste_faces(photo, face, info, "restored")
    assert torch.equal(restored, torch.from_numpy(before).clamp(0, 1).permute(2, 0, 1)[None])
    assert torch.equal(paste_faces(photo, face, info), restored), "restored is paste_faces' default"
    toned = paste_faces(photo, face, info, "photo")
    square = cv2.warpAffine(np.ones((CROP, CROP), np.float32), cv2.invertAffineTransform(info.faces[0].affine),
                            (SIZE, SIZE))
    outside = torch.from_numpy(cv2.dilate(square, np.ones((7, 7), np.uint8)) == 0)  # the feather's blur spills ~3 px
    assert outside.sum() > SIZE * SIZE / 2
    assert torch.equal(toned[0][:, outside], photo[0][:, outside])


@pytest.mark.parametrize("kind, auto_is", [("grayscale", "photo"), ("sepia", "photo"), ("colour", "restored")])
def test_auto_takes_the_photos_tone_only_in_monochrome_and_tinted_photos(kind, auto_is):
    photo, face, info = scene(kind)
    assert torch.equal(paste_faces(photo, face, info, "auto"), paste_faces(photo, face, info, auto_is))
    assert uses_photo_tone("auto", photo[0].permute(1, 2, 0).numpy()) is (auto_is == "photo")


def test_an_unknown_tone_is_refused_naming_the_choices():
    photo, face, info = scene("sepia")
    with pytest.raises(ValueError, match="tone must be one of auto, photo, restored"):
        paste_faces(photo, face, info, "sepia")
