"""The template browser's thumbnails (example_workflows/<name>.jpg): each shows its workflow's
sample photo before and after a headless run of the workflow (scripts/make_thumbnails.py), never
the frontend, whose "Missing Models" dialog a screenshot on a machine without the checkpoints
shows. Plain files: no host, no browser (tests/test_browser.py checks that the frontend lists and
shows them)."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

from conftest import REPO

EXAMPLES = REPO / "example_workflows"
SHIPPED = sorted(path.stem for path in EXAMPLES.glob("*.json"))
MADE_BY = "scripts/make_thumbnails.py"


def thumbnail(name: str) -> Image.Image:
    path = EXAMPLES / f"{name}.jpg"
    assert path.is_file(), f"{name}.json has no thumbnail: run {MADE_BY} {name}"
    return Image.open(path)


def record(image: Image.Image) -> dict:
    """What make_thumbnails.py wrote into the JPEG's comment about the run."""
    comment = image.info.get("comment")
    assert comment, f"the thumbnail records no run (made by something else than {MADE_BY})"
    return json.loads(comment)


def pixels(image: Image.Image, box: list[int] | None = None) -> np.ndarray:
    return np.asarray((image.crop(box) if box else image).convert("RGB"), dtype=np.float32)


def looks_like_the_frontend(image: Image.Image) -> bool:
    """A screenshot of ComfyUI's frontend: its dark canvas at the edges and over most of the image
    (a dialog drawn over it is dark gray too). The thumbnails are drawn on a light background."""
    array = pixels(image)
    frame = np.concatenate([array[:6].reshape(-1, 3), array[-6:].reshape(-1, 3),
                            array[:, :6].reshape(-1, 3), array[:, -6:].reshape(-1, 3)])
    return frame.mean() < 100 or (array.max(-1) < 50).mean() > 0.3


def test_every_thumbnail_belongs_to_a_shipped_workflow():
    assert SHIPPED, "no workflow in example_workflows/"
    assert sorted(path.stem for path in EXAMPLES.glob("*.jpg")) == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_no_thumbnail_is_a_screenshot_of_the_frontend(name):
    with thumbnail(name) as image:
        assert image.format == "JPEG" and image.width >= 320 and image.height >= 320, (image.format, image.size)
        assert not looks_like_the_frontend(image), f"{name}.jpg looks like the frontend's canvas (a dialog?)"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_thumbnail_shows_its_workflow_before_and_after_a_run(name):
    with thumbnail(name) as image:
        made = record(image)
        assert made["made_by"] == MADE_BY and made["workflow"] == f"shipped_workflows/{name}_api.json", made
        api = json.loads((REPO / made["workflow"]).read_text())
        assert api[made["before"]["node"]]["class_type"] == "LoadImage", made
        assert api[made["after"]["node"]]["class_type"] == "SaveImage", made
        # "before": the sample photo the run loaded, as it is (only scaled and JPEG-compressed).
        box = made["before"]["box"]
        with Image.open(REPO / made["before"]["file"]) as sample:
            expected = pixels(sample.convert("RGB").resize((box[2] - box[0], box[3] - box[1]), Image.LANCZOS))
        before = pixels(image, box)
        assert np.abs(before - expected).mean() < 6, f"{name}: the 'before' photo is not {made['before']['file']}"
        # "after": a photo the run changed, not a blank or the input again.
        after = pixels(image, made["after"]["box"])
        assert after.std() > 10, f"{name}: the 'after' photo is blank"
        if after.shape == before.shape:
            assert np.abs(after - before).mean() > 5, f"{name}: the 'after' photo is the 'before' one"
        # Random stand-ins restore nothing: the thumbnail says so across the 'after' photo.
        if made["random_weights"]:
            assert any("RANDOM" in said for said in made["stand_ins"]), made
            warning = pixels(image, made["warning"])
            left, _, right, bottom = made["after"]["box"]
            assert made["warning"][0] == left and made["warning"][2] == right and made["warning"][3] == bottom
            assert (warning.min(-1) > 230).mean() > 0.6, f"{name}: no warning band across the 'after' photo"
            red = (warning[..., 0] > 120) & (warning[..., 1] < 90) & (warning[..., 2] < 90)
            assert red.sum() > 200, f"{name}: the warning band has no text"


def test_the_check_sees_a_screenshot_of_the_missing_models_dialog():
    """As the thumbnails were: the frontend's dark canvas with its Missing Models dialog centred."""
    screenshot = Image.new("RGB", (800, 500), (18, 18, 18))
    draw = ImageDraw.Draw(screenshot)
    draw.rectangle((232, 105, 568, 393), fill=(32, 32, 34), outline=(60, 60, 60))
    draw.rectangle((250, 290, 410, 345), outline=(200, 40, 40))
    assert looks_like_the_frontend(screenshot)
    with pytest.raises(AssertionError, match="records no run"):
        record(screenshot)
