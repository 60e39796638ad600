"""Filling scratches at the photo's own resolution (priors/inpainting.py) and the LaMa loader
(models/lama): the fill's quality on a photo with a known clean original, pixels outside the
grown mask untouched, only crops around the damage processed, and big-lama.pt's TorchScript
archive read without running it."""
from __future__ import annotations

import logging
import warnings
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from harness.tiny_models import big_lama, save_big_lama_archive

from comfyui_ssdiff.models.checkpoint_files import read_checkpoint_keys
from comfyui_ssdiff.models import lama
from comfyui_ssdiff.models.files import catalogue_file
from comfyui_ssdiff.priors.inpainting import fill, fill_region, holes_of, plan_crops

# --- a photo with a known original --------------------------------------------------------------


def clean_photo(height: int, width: int) -> np.ndarray:
    """3 x H x W in [0, 1]: smooth shading with some mid-frequency texture."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return np.stack([0.5 + 0.25 * np.sin(xx / 40) + 0.05 * np.sin(yy / 7),
                     0.5 + 0.25 * np.cos(yy / 55) + 0.05 * np.cos(xx / 9),
                     0.45 + 0.2 * np.sin((xx + yy) / 70)]).astype(np.float32)


def draw_damage(height: int, width: int, seed: int = 0, offset: tuple[int, int] = (0, 0)) -> np.ndarray:
    """H x W uint8: two thin scratches and a sprinkle of dust, shifted by `offset` (y, x)."""
    rng = np.random.default_rng(seed)
    mask = np.zeros((height, width), np.uint8)
    oy, ox = offset
    cv2.line(mask, (ox + 20, oy + 30), (ox + 230, oy + 200), 1, 2)
    cv2.line(mask, (ox + 40, oy + 220), (ox + 200, oy + 170), 1, 1)
    for _ in range(25):
        centre = (ox + int(rng.integers(10, 246)), oy + int(rng.integers(10, 246)))
        cv2.circle(mask, centre, int(rng.integers(1, 3)), 1, -1)
    return mask


def scratched(clean: np.ndarray, mask: np.ndarray) -> np.ndarray:
    damaged = clean.copy()
    damaged[:, mask > 0] = np.array([0.97, 0.96, 0.93], np.float32)[:, None]  # white scratches and dust
    return damaged


def grown(mask: np.ndarray, dilation_px: int) -> np.ndarray:
    """The grown mask, computed here independently: a disk of dilation_px."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation_px + 1, 2 * dilation_px + 1))
    return cv2.dilate((mask > 0).astype(np.uint8), kernel) > 0


class CountingStub(nn.Module):
    """Stands in for LaMa: fills holes with 0.5 and records what it was given."""

    def __init__(self):
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(()))
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        self.shapes.append(tuple(image.shape))
        return image * (1 - mask) + 0.5 * mask

    @property
    def pixels(self) -> int:
        return sum(b * h * w for b, _, h, w in self.shapes)


# --- Telea, blending, channels, errors ----------------------------------------------------------

def test_telea_brings_the_damage_back_towards_the_original_and_leaves_the_rest_bit_identical():
    clean = clean_photo(256, 256)
    mask = draw_damage(256, 256)
    photo = torch.from_numpy(scratched(clean, mask))[None]
    result = fill(photo, torch.from_numpy(mask).float()[None, None], "telea", dilation_px=2, radius=5)
    assert result.shape == photo.shape and result.dtype == photo.dtype
    inside = torch.from_numpy(mask > 0)
    before = (photo[0][:, inside] - torch.from_numpy(clean)[:, inside]).abs().mean()
    after = (result[0][:, inside] - torch.from_numpy(clean)[:, inside]).abs().mean()
    assert after < 0.05 * before, (before, after)
    assert after < 0.02
    outside = torch.from_numpy(~grown(mask, 2))
    assert torch.equal(result[0][:, outside], photo[0][:, outside])
    assert torch.equal(fill_region(torch.from_numpy(mask)[None], 2)[0], ~outside)
    # The grown band is filled too (it holds the scratch's soft edges), and nothing beyond it changes.
    changed = (result[0] != photo[0]).any(0)
    assert changed[~outside].float().mean() > 0.5 and not changed[outside].any()


def test_noise_photo_alpha_and_grey_outside_the_mask_are_untouched():
    generator = torch.Generator().manual_seed(0)
    mask = torch.from_numpy(draw_damage(256, 256, seed=1)).float()
    outside = torch.from_numpy(~grown(mask.numpy(), 3))
    rgba = torch.rand(2, 4, 256, 256, generator=generator)
    for method, network in (("telea", None), ("lama", CountingStub())):
        result = fill(rgba, mask[None], method, network, dilation_px=3)  # one mask for both photos
        assert torch.equal(result[:, 3], rgba[:, 3]), "alpha untouched"
        assert torch.equal(result[:, :, outside], rgba[:, :, outside])
        assert not torch.equal(result[:, :3], rgba[:, :3])
    grey = torch.from_numpy(scratched(clean_photo(256, 256), mask.numpy().astype(np.uint8))[:1])[None]
    grey_alpha = torch.cat([grey, torch.rand(1, 1, 256, 256, generator=generator)], 1)
    for method, network in (("telea", None), ("lama", CountingStub())):
        result = fill(grey_alpha, mask[None, None], method, network)
        assert result.shape == grey_alpha.shape and torch.equal(result[:, 1], grey_alpha[:, 1])
        assert torch.equal(result[:, :, ~fill_region(mask)[0]], grey_alpha[:, :, ~fill_region(mask)[0]])
    result = fill(grey, mask, "lama", CountingStub())
    assert torch.allclose(result[0, 0][mask > 0], torch.tensor(0.5))  # the stub's fill, as grey


def test_a_mask_of_another_size_is_refused_naming_both_sizes():
    photo = torch.rand(1, 3, 90, 120)
    with pytest.raises(ValueError, match=r"mask is 100x80 px but the photo is 120x90 px"):
        fill(photo, torch.zeros(1, 80, 100))
    with pytest.raises(ValueError, match="2 masks for 1 photos"):
        fill(photo, torch.zeros(2, 1, 90, 120))
    with pytest.raises(ValueError, match="needs a LaMa network"):
        fill(photo, torch.ones(1, 90, 120), "lama")
    with pytest.raises(ValueError, match="method must be one of"):
        fill(photo, torch.ones(1, 90, 120), "blur")


def test_an_empty_mask_warns_and_passes_the_photo_through(caplog):
    photo = torch.rand(2, 3, 64, 64)
    with caplog.at_level(logging.WARNING):
        result = fill(photo, torch.zeros(2, 64, 64), "lama", CountingStub())
    assert torch.equal(result, photo) and result is not photo
    assert "the mask is empty" in caplog.text


# --- crops: cost follows the damage -------------------------------------------------------------

def test_only_crops_around_the_damage_are_processed_and_their_area_follows_the_damage():
    damage = draw_damage(256, 256, seed=2)

    def seen(size: int, copies: list[tuple[int, int]]) -> tuple[int, int, int]:
        mask = np.zeros((size, size), np.uint8)
        for offset in copies:
            mask |= draw_damage(size, size, seed=2, offset=offset)
        stub = CountingStub()
        photo = torch.from_numpy(scratched(clean_photo(size, size), mask))[None]
        calls = []
        fill(photo, torch.from_numpy(mask)[None], "lama", stub, check_interrupt=lambda: calls.append(1))
        crops, _ = plan_crops(holes_of(mask))
        assert len(calls) == len(crops)
        assert max(max(h, w) for _, _, h, w in stub.shapes) <= 136  # tiles and merged windows, not the photo
        return stub.pixels, int(holes_of(mask).sum()), sum(crop.area for crop in crops)

    small, holes, planned = seen(512, [(128, 128)])
    assert holes == int(holes_of(damage).sum())
    assert small < 0.4 * 512 ** 2 and small < 30 * holes, (small, holes)
    assert planned <= small <= 1.5 * planned  # LaMa's crops: the planned ones grown to multiples of 8
    # The same damage in a photo 16 times larger costs the same; twice the damage, twice the cost.
    large, _, _ = seen(2048, [(896, 896)])
    assert large == small
    double, double_holes, _ = seen(2048, [(200, 200), (1400, 1300)])
    assert double_holes == 2 * holes and double == 2 * small


def test_an_interrupt_stops_between_crops():
    mask = torch.from_numpy(draw_damage(256, 256))[None]
    stub, calls = CountingStub(), []

    def interrupt():
        calls.append(1)
        if len(calls) == 3:
            raise InterruptedError

    with pytest.raises(InterruptedError):
        fill(torch.rand(1, 3, 256, 256), mask, "lama", stub, check_interrupt=interrupt, batch_pixels=1)
    assert len(stub.shapes) == 2


def test_a_large_hole_is_downscaled_within_its_crop_only():
    mask = np.zeros((400, 400), np.uint8)
    cv2.circle(mask, (200, 200), 90, 1, -1)
    cv2.line(mask, (10, 390), (390, 380), 1, 2)  # a long thin scratch: tiles at full resolution
    stub = CountingStub()
    photo = torch.rand(1, 3, 400, 400)
    result = fill(photo, torch.from_numpy(mask)[None], "lama", stub, max_side=96, tile=64)
    sides = sorted({(h, w) for _, _, h, w in stub.shapes}, key=max)
    assert sides[-1] == (96, 96)  # the hole's crop, 312 px square, downscaled to 96
    assert max(sides[-2]) <= 64 and sum(b for b, *_ in stub.shapes) > 5  # the scratch's tiles, full resolution
    hole = torch.from_numpy(mask > 0)
    torch.testing.assert_close(result[0][:, hole], torch.full_like(result[0][:, hole], 0.5))
    outside = torch.from_numpy(~grown(mask, 2))
    assert torch.equal(result[0][:, outside], photo[0][:, outside])


# --- LaMa: big-lama.pt read without running it ---------------------------------------------------

@pytest.fixture(scope="module")
def reference() -> nn.Module:
    """spandrel's LaMa (the real big-lama size, 51 M parameters) with random weights."""
    return big_lama(seed=0)


@pytest.fixture(scope="module")
def lama_files(reference, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("inpaint")
    archive = save_big_lama_archive(reference, folder / "big-lama.pt")
    safetensors_file = folder / "big-lama.safetensors"
    save_file({key: value.contiguous() for key, value in reference.state_dict().items()}, str(safetensors_file))
    return {"archive": archive, "safetensors": safetensors_file}


@pytest.fixture
def one_thread():
    """The real-size LaMa on one thread: on a CPU busy with other work, torch's threads would wait
    for each other (a 40 px crop then takes seconds)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def no_code_runs(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("the archive was handed to torch.jit.load / torch.load")

    monkeypatch.setattr(torch.jit, "load", refuse)
    monkeypatch.setattr(torch, "load", refuse)


def test_the_archive_is_a_torchscript_archive_in_the_upstream_layout(lama_files):
    with zipfile.ZipFile(lama_files["archive"]) as archive:
        names = archive.namelist()
    assert "big-lama/data.pkl" in names and "big-lama/constants.pkl" in names
    assert any(name.startswith("big-lama/code/") for name in names)
    assert lama.is_torchscript(str(lama_files["archive"])) and not lama.is_torchscript(str(lama_files["safetensors"]))


@pytest.mark.parametrize("kind", ["archive", "safetensors"])
def test_lama_loads_without_running_the_archive_and_fills_as_spandrel_does(kind, lama_files, reference, no_code_runs,
                                                                          one_thread):
    keys = read_checkpoint_keys(str(lama_files[kind])).keys
    assert len(keys) == len(reference.state_dict()) == 989
    assert ("model.generator.model.1.bn_l.running_mean" if kind == "archive" else
            "model.model.1.bn_l.running_mean") in keys
    network = lama.load(str(lama_files[kind]))
    loaded = network.state_dict()
    assert loaded.keys() == reference.state_dict().keys()
    assert all(torch.equal(loaded[name], tensor) for name, tensor in reference.state_dict().items())
    # The fill's crops through the loaded network are what spandrel's own LaMa makes of them.
    clean = clean_photo(96, 128)
    mask = np.zeros((96, 128), np.uint8)
    cv2.line(mask, (50, 40), (75, 52), 1, 2)
    photo = torch.from_numpy(scratched(clean, mask))[None]
    seen = []
    hook = network.register_forward_hook(lambda module, inputs, output: seen.append((*inputs, output)))
    result = fill(photo, torch.from_numpy(mask)[None], "lama", network)
    hook.remove()
    assert len(seen) == 1
    image, crop_mask, output = seen[0]
    assert image.shape[-1] < 128 and image.shape[-1] % 8 == 0 and image.shape[-2] % 8 == 0
    with torch.no_grad():
        torch.testing.assert_close(output, reference(image, crop_mask), rtol=0, atol=0)
    # Written back as LaMa gave it, inside the grown mask only.
    region = torch.from_numpy(grown(mask, 2))
    assert torch.equal(result[0][:, ~region], photo[0][:, ~region])
    assert set(result[0][:, region].flatten().tolist()) <= set(output.flatten().tolist())


def test_files_of_another_kind_or_damaged_are_refused_naming_them(lama_files, tmp_path, no_code_runs):
    other = tmp_path / "other.safetensors"
    save_file({"conv.weight": torch.zeros(4, 3, 3, 3)}, str(other))
    with pytest.raises(ValueError, match=r"'other.safetensors' is not a LaMa inpainting network.*big-lama.pt"):
        lama.load(str(other))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.save(torch.jit.trace(nn.Conv2d(3, 3, 3), torch.rand(1, 3, 8, 8)), str(tmp_path / "conv.pt"))
    with pytest.raises(ValueError, match=r"'conv.pt' is not a LaMa inpainting network.*found bias, weight"):
        lama.load(str(tmp_path / "conv.pt"))
    (tmp_path / "notes.pt").write_text("not a model")
    with pytest.raises(ValueError, match=r"could not read 'notes.pt' as a LaMa inpainting network: it is not a "
                                         r"checkpoint"):
        lama.load(str(tmp_path / "notes.pt"))
    truncated = tmp_path / "big-lama-cut.pt"
    truncated.write_bytes(lama_files["archive"].read_bytes()[:50_000_000])
    with pytest.raises(ValueError, match=r"'big-lama-cut.pt'.* truncated"):
        lama.load(str(truncated))


def test_an_archive_whose_pickle_names_code_is_refused(lama_files, tmp_path, no_code_runs):
    rogue = tmp_path / "rogue.pt"
    # data.pkl replaced by os.system("true"): PROTO 2, GLOBAL, BINUNICODE, TUPLE1, REDUCE, STOP.
    call = b"\x80\x02cos\nsystem\nX\x04\x00\x00\x00true\x85R."
    with zipfile.ZipFile(lama_files["archive"]) as source, zipfile.ZipFile(rogue, "w") as target:
        for info in source.infolist():
            target.writestr(info, call if info.filename.endswith("/data.pkl") else source.read(info))
    reading = read_checkpoint_keys(str(rogue))
    assert reading.problem is not None and "os.system" in reading.detail
    with pytest.raises(ValueError, match=r"could not read 'rogue.pt'.*damaged.*os\.system"):
        lama.load(str(rogue))


def test_big_lama_is_catalogued_in_the_inpaint_folder():
    entry = catalogue_file("big-lama.pt")
    assert entry is not None and entry in lama.FILE.files and entry.folder == "inpaint"
    assert entry.url == "https://github.com/Sanster/models/releases/download/add_big_lama/big-lama.pt"
    assert entry.size == 205669692
    assert entry.sha256 == "344c77bbcb158f17dd143070d1e789f38a66c04202311ae3a258ef66667a9ea9"


def test_a_model_descriptor_is_unwrapped():
    """spandrel's MaskedImageModelDescriptor (what other packs' loaders give) holds the module in `model`."""
    from types import SimpleNamespace

    stub, mask = CountingStub(), torch.from_numpy(draw_damage(256, 256))[None]
    photo = torch.rand(1, 3, 256, 256)
    assert torch.equal(fill(photo, mask, "lama", SimpleNamespace(model=stub)), fill(photo, mask, "lama", stub))
    assert stub.shapes
