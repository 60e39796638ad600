"""Whole photos: alignment to the FFHQ template, crop and paste-back, in the real host."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.priors.alignment import (FFHQ_TEMPLATE_512, DetectedFace, alignment_affine, paste_face,
                                   select_faces, warp_face)


def smooth_photo(height: int = 360, width: int = 480, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A photo-like image: low-frequency colour plus gentle texture, so that interpolation error
    measures the geometry, not aliasing."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((height // 24, width // 24, channels)).astype(np.float32)
    photo = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC)
    photo = cv2.GaussianBlur(photo, (0, 0), 3).reshape(height, width, channels)
    return np.clip(photo, 0, 1)


def face_at(centre: tuple[float, float], scale: float, angle_degrees: float) -> DetectedFace:
    """A face whose landmarks are the FFHQ template, scaled, rotated and moved."""
    angle = np.deg2rad(angle_degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]], np.float32)
    landmarks = (FFHQ_TEMPLATE_512 - 256) @ rotation.T * scale + np.asarray(centre, np.float32)
    half = 256 * scale
    box = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    return DetectedFace(box, 0.99, landmarks)


def test_alignment_maps_the_landmarks_onto_the_template():
    face = face_at((240, 180), 0.4, 12)
    affine = alignment_affine(face.landmarks, 512)
    mapped = face.landmarks @ affine[:, :2].T + affine[:, 2]
    assert np.abs(mapped - FFHQ_TEMPLATE_512).max() < 0.05


def test_pasting_the_unmodified_crop_changes_the_photo_by_less_than_a_grey_level():
    photo = smooth_photo()
    face = face_at((240, 180), 0.4, 12)
    affine = alignment_affine(face.landmarks, 512)
    crop = warp_face(photo, affine, 512)
    pasted = paste_face(photo, crop, affine)
    x1, y1, x2, y2 = (int(v) for v in face.box)
    assert np.abs(pasted - photo).mean() * 255 < 0.5
    assert np.abs(pasted - photo)[y1:y2, x1:x2].mean() * 255 < 1.0
    untouched = np.ones(photo.shape[:2], bool)
    untouched[max(y1 - 60, 0):y2 + 60, max(x1 - 60, 0):x2 + 60] = False
    assert np.array_equal(pasted[untouched], photo[untouched])


def test_face_selection():
    small, large, medium = face_at((50, 50), 0.05, 0), face_at((200, 200), 0.4, 0), face_at((300, 80), 0.2, 0)
    ordered = sorted([small, large, medium], key=lambda face: face.area, reverse=True)
    assert select_faces(ordered, "largest") == [large]
    assert select_faces(ordered, "all") == [large, medium, small]
    assert select_faces(ordered, "index", 1) == [medium]
    assert select_faces(ordered, "index", 5) == []
    assert select_faces(ordered, "all", min_eye_distance=20) == [large, medium]
    with pytest.raises(ValueError, match="largest"):
        select_faces(ordered, "biggest")



@pytest.fixture(scope="module")
def detector(comfy):
    detector, = execute(comfy, "SSDiffFaceDetectorLoader", model_name="detection_mobilenet0.25_Final.pth")
    return detector


def crop_inputs(detector, image, **overrides):
    return {"detector": detector, "image": image, "crop_size": 128, "selection": "all", "index": 0,
            "min_eye_distance": 0.0, "confidence": 0.97, **overrides}


def test_detector_loader_reads_facexlib_weights(detector):
    assert detector.name == "RetinaFace" and detector.find.args[0].backbone == "mobilenet0.25"
    photo = smooth_photo(120, 160)
    from comfyui_ssdiff.priors.face_detection import detect_faces
    assert isinstance(detect_faces(detector, photo, confidence=1.0), list)


def test_a_photo_without_faces_passes_through_unchanged(comfy, detector):
    photos = torch.from_numpy(np.stack([smooth_photo(90, 120, seed=1), smooth_photo(90, 120, seed=2)]))
    faces, masks, info = execute(comfy, "SSDiffFaceCrop", **crop_inputs(detector, photos, confidence=1.0))
    assert faces.shape == (2, 128, 128, 3) and masks.shape == (2, 128, 128) and info.faces == ()
    pasted, = execute(comfy, "SSDiffFacePaste", image=photos, faces=faces, face_info=info)
    assert torch.equal(pasted, photos)


def test_a_grayscale_photo_without_faces_comes_back_as_an_rgb_crop_and_unchanged(comfy, detector):
    photos = torch.from_numpy(smooth_photo(90, 120, channels=1, seed=4))[None]
    faces, masks, info = execute(comfy, "SSDiffFaceCrop", **crop_inputs(detector, photos, confidence=1.0))
    assert faces.shape == (1, 128, 128, 3) and masks.shape == (1, 128, 128) and info.faces == ()
    photo_area = faces[0, 40:88, 20:108]  # inside the letterbox, off its grey border
    assert torch.equal(photo_area[..., 0], photo_area[..., 2])
    pasted, = execute(comfy, "SSDiffFacePaste", image=photos, faces=faces, face_info=info)
    assert torch.equal(pasted, photos)


def test_crop_and_paste_round_trip_with_several_faces_rgba_and_a_mask(comfy, detector, pack, monkeypatch):
    rgb = smooth_photo(300, 400, seed=3)
    alpha = np.linspace(0, 1, 400, dtype=np.float32)[None, :, None].repeat(300, 0)
    photo = torch.from_numpy(np.concatenate([rgb, alpha], axis=-1))[None]
    faces_in_photo = [face_at((110, 150), 0.25, -8), face_at((290, 140), 0.3, 5)]
    monkeypatch.setattr(pack.priors.faces, "detect_faces", lambda *args, **kwargs: faces_in_photo)
    scratches = torch.zeros(1, 300, 400)
    scratches[0, 150, :] = 1
    faces, masks, info = execute(comfy, "SSDiffFaceCrop", **crop_inputs(detector, photo, mask=scratches))
    assert faces.shape == (2, 128, 128, 3) and len(info.faces) == 2
    assert masks.shape == (2, 128, 128) and masks.amax() > 0.5
    pasted, = execute(comfy, "SSDiffFacePaste", image=photo, faces=faces, face_info=info)
    assert pasted.shape == photo.shape
    assert torch.equal(pasted[..., 3], photo[..., 3])
    assert (pasted - photo).abs()[..., :3].mean() * 255 < 1.0
    brightened, = execute(comfy, "SSDiffFacePaste", image=photo, faces=(faces + 0.3).clamp(0, 1), face_info=info)
    x1, y1, x2, y2 = (int(v) for v in faces_in_photo[0].box)
    centre = brightened[0, (y1 + y2) // 2 - 5:(y1 + y2) // 2 + 5, (x1 + x2) // 2 - 5:(x1 + x2) // 2 + 5, :3]
    assert (centre - photo[0, (y1 + y2) // 2 - 5:(y1 + y2) // 2 + 5, (x1 + x2) // 2 - 5:(x1 + x2) // 2 + 5, :3]).mean() > 0.2
    with pytest.raises(ValueError, match="1 faces for 2 crops"):
        execute(comfy, "SSDiffFacePaste", image=photo, faces=faces[:1], face_info=info)


@pytest.mark.parametrize("scale", [2, 3])
def test_faces_are_pasted_into_a_scaled_photo_at_the_new_scale_and_another_shape_is_refused(scale):
    """Face Paste into the photo upscaled (as Upscale Image (using Model) does, a whole factor) puts
    each face where the upscaled paste into the original puts it; a photo of another shape is
    refused."""
    from comfyui_ssdiff.priors.alignment import AlignedFace, FaceInfo
    from comfyui_ssdiff.priors.faces import paste_faces

    photo = smooth_photo(120, 160)
    face = face_at((80, 60), 0.12, 8)
    affine = alignment_affine(face.landmarks, 128)
    info = FaceInfo(128, ((120, 160),), (AlignedFace(0, affine, face),))
    restored = np.full((128, 128, 3), 0.9, np.float32)
    restored[40:90, 30:100] = 0.1  # a dark patch whose place shows where the face went
    crops = torch.from_numpy(restored).permute(2, 0, 1)[None]
    pasted = paste_faces(torch.from_numpy(photo).permute(2, 0, 1)[None], crops, info)[0].permute(1, 2, 0).numpy()
    upscaled = cv2.resize(photo, (160 * scale, 120 * scale), interpolation=cv2.INTER_CUBIC)
    into_upscaled = paste_faces(torch.from_numpy(upscaled).permute(2, 0, 1)[None], crops, info)[0]
    expected = cv2.resize(pasted, (160 * scale, 120 * scale), interpolation=cv2.INTER_CUBIC)
    dark, expected_dark = into_upscaled.permute(1, 2, 0).numpy().mean(-1) < 0.3, expected.mean(-1) < 0.3
    assert dark.sum() > 100 * scale ** 2
    assert (dark ^ expected_dark).sum() < 0.05 * expected_dark.sum()
    with pytest.raises(ValueError, match="of another shape"):
        paste_faces(torch.from_numpy(photo[:, :100].copy()).permute(2, 0, 1)[None], crops, info)
