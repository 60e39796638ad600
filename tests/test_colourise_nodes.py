"""SSDiff Colouriser Loader, SSDiff Colourise and SSDiff Face Crop (same faces) in the real host
(issue 29, points 2 and 3): a random DDColor of the real architecture saved as the released files
are, loaded through the loader, keeps each photo's lightness exactly at full resolution, as the
core does; the faces of the colourised photo are cropped where Face Crop found them on the
original; the colourise_old_photo workflow runs end to end through the server."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.priors.colourise import colourise, lightness
from harness.tiny_ddcolor import TINY_INPUT_SIZE

L_TOLERANCE = 0.01
"""CIELAB L units: the result's lightness against the photo's, by the same conversion."""


def sepia_photo(height: int, width: int) -> torch.Tensor:
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    gray = 0.5 + 0.35 * np.sin(xs / 17) * np.cos(ys / 23)
    return torch.from_numpy(np.stack([gray * 1.07, gray * 0.95, gray * 0.74], -1).clip(0, 1))[None]


@pytest.fixture(scope="module")
def colouriser(comfy, ddcolor_file):
    network, = execute(comfy, "SSDiffColouriserLoader", model_name=ddcolor_file.name, input_size=TINY_INPUT_SIZE)
    return network


def test_the_loader_lists_and_loads_the_released_format(comfy, ddcolor_file, colouriser):
    schema = comfy.NODE_CLASS_MAPPINGS["SSDiffColouriserLoader"].define_schema()
    assert next(item.options for item in schema.inputs if item.id == "model_name") == ["ddcolor_modelscope.pth"]
    assert colouriser.input_size == (TINY_INPUT_SIZE, TINY_INPUT_SIZE)


def test_the_photo_keeps_its_lightness_at_full_resolution_as_the_core_gives_it(comfy, colouriser):
    image = sepia_photo(300, 517)
    coloured, = execute(comfy, "SSDiffColourise", colouriser=colouriser, image=image)
    assert coloured.shape == image.shape
    photo, result = image.movedim(-1, 1), coloured.movedim(-1, 1)
    assert (lightness(result) - lightness(photo)).abs().max() < L_TOLERANCE
    torch.testing.assert_close(result, colourise(colouriser, photo), rtol=0, atol=0)
    assert (result[:, 0] - result[:, 2]).abs().mean() != pytest.approx((photo[:, 0] - photo[:, 2]).abs().mean())


def test_gray_rgba_and_batches(comfy, colouriser):
    image = sepia_photo(40, 56)
    gray = image.mean(-1, keepdim=True)
    rgba = torch.cat([image, torch.full_like(gray, 0.3)], -1)
    from_gray, = execute(comfy, "SSDiffColourise", colouriser=colouriser, image=gray)
    assert from_gray.shape == (1, 40, 56, 3)
    assert (lightness(from_gray.movedim(-1, 1)) - lightness(gray.expand(-1, -1, -1, 3).movedim(-1, 1))).abs().max() \
        < L_TOLERANCE
    from_rgba, = execute(comfy, "SSDiffColourise", colouriser=colouriser, image=rgba)
    assert torch.equal(from_rgba[..., 3], rgba[..., 3])
    batch, = execute(comfy, "SSDiffColourise", colouriser=colouriser, image=torch.cat([image, image.flip(1)]))
    torch.testing.assert_close(batch[1:], execute(comfy, "SSDiffColourise", colouriser=colouriser,
                                                  image=image.flip(1))[0], rtol=0, atol=0)


def test_a_file_of_another_kind_is_refused_naming_it(comfy, models_root):
    other = models_root / "ddcolor" / "not_ddcolor.pth"
    shutil.copy(models_root / "ssdiff" / "FT_Epoch_latest.pt", other)
    try:
        with pytest.raises(ValueError, match="'not_ddcolor.pth' is not a DDColor colourisation network"):
            execute(comfy, "SSDiffColouriserLoader", model_name="not_ddcolor.pth", input_size=512)
    finally:
        other.unlink()
    message = comfy.NODE_CLASS_MAPPINGS["SSDiffColouriserLoader"].validate_inputs(model_name="missing.pth")
    assert "missing.pth" in message and "huggingface.co/piddnad/DDColor-models" in message


def test_the_same_faces_are_cropped_from_the_colourised_photo(comfy):
    from comfyui_ssdiff.models import mtcnn
    from test_server import SAMPLE

    from PIL import Image
    photo = torch.from_numpy(np.asarray(Image.open(SAMPLE / "ssdiff_sample_old_photo.png").convert("RGB"),
                                        dtype=np.float32) / 255)[None]
    detector, = execute(comfy, "SSDiffFaceDetectorLoader", model_name=mtcnn.CHOICE)
    faces, _, info = execute(comfy, "SSDiffFaceCrop", detector=detector, image=photo, crop_size=128,
                             selection="largest", index=0, min_eye_distance=10.0, confidence=0.0)
    assert len(info.faces) == 1
    again, = execute(comfy, "SSDiffFaceRecrop", image=photo, face_info=info)
    torch.testing.assert_close(again, faces, rtol=0, atol=0)
    larger = torch.nn.functional.interpolate(photo.movedim(-1, 1), scale_factor=2, mode="bicubic",
                                             align_corners=False).clamp(0, 1).movedim(1, -1)
    from_larger, = execute(comfy, "SSDiffFaceRecrop", image=larger, face_info=info)
    assert (from_larger - faces).abs().mean() < 0.02
    with pytest.raises(ValueError, match="got 2 photos, but the Face Crop that made face_info saw 1"):
        execute(comfy, "SSDiffFaceRecrop", image=torch.cat([photo, photo]), face_info=info)


def colourise_test_prompt(server) -> dict:
    """The shipped colourise workflow on the bundled old photo for a test server: MTCNN finds its
    face, the other networks are the tiny random ones, 2 steps, 64 px faces."""
    from test_server import shipped_workflow
    from comfyui_ssdiff.models import mtcnn

    prompt = shipped_workflow(server, "colourise_old_photo_api.json", steps=2, crop_size=64)
    prompt["2"]["inputs"]["model_name"] = mtcnn.CHOICE
    prompt["18"]["inputs"]["input_size"] = TINY_INPUT_SIZE
    prompt["16"]["inputs"]["threshold"] = 1.0  # the random detector marks every pixel: nothing to fill from
    return prompt


def test_the_colourise_workflow_runs_end_to_end_through_the_server(server, ddcolor_file):
    """The shipped workflow on the bundled old photo (MTCNN finds its face; the other networks are
    the tiny random ones): the colourised photo is written, its colour changed, with the photo's
    lightness outside the pasted face."""
    from PIL import Image
    from test_server import SAMPLE

    images = server.output_images(server.run(colourise_test_prompt(server)))
    assert [path.name.split("_0")[0] for path in images] == ["colourised_photo"]
    result = np.asarray(Image.open(images[0]).convert("RGB"), dtype=np.float32) / 255
    photo = np.asarray(Image.open(SAMPLE / "ssdiff_sample_old_photo.png").convert("RGB"), dtype=np.float32) / 255
    assert result.shape == photo.shape
    assert np.abs(result - photo).mean() > 0.02  # the colour is DDColor's (random here), not the sepia's
    corner = (slice(0, 24), slice(0, 24))  # background, away from the face and the filled scratches
    to_l = lambda array: lightness(torch.from_numpy(array[corner]).movedim(-1, 0)[None])
    assert (to_l(result) - to_l(photo)).abs().mean() < 1.0
