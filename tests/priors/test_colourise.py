"""Colourising whole photos with DDColor (priors/colourise.py) and reading its released files
(models/ddcolor): a random DDColor of the real architecture, saved as the released .pth files are,
read as the pack reads checkpoints and built through spandrel. The result keeps each photo's own
CIELAB lightness at full resolution, whatever its size, channels or batch; the network sees
what spandrel's own DDColor call feeds it; other networks are refused, named."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from harness.tiny_ddcolor import TINY_INPUT_SIZE, save_ddcolor
from harness.tiny_models import big_lama, save_scratch_detector

from comfyui_ssdiff.models import ddcolor
from comfyui_ssdiff.models.checkpoint_files import read_checkpoint_keys
from comfyui_ssdiff.models.files import CATALOGUE, DDCOLOR_FOLDER, MODEL_FOLDERS, Kind
from comfyui_ssdiff.models.state_dicts import unwrap_state_dict
from comfyui_ssdiff.priors.arrays import image_array
from comfyui_ssdiff.priors.colourise import (COLOUR_BAND_BYTES, band_rows, colourise, enlarged_rows, lightness,
                                             network_input, predict_ab, rgb_to_lab)

L_TOLERANCE = 0.01
"""L units (0..100): the result's lightness against the photo's, both by the module's conversion
(float32 rounding, about 1e-5)."""
OPENCV_L_TOLERANCE = 0.5
"""The same measured with OpenCV's float Lab, itself 0.2 to 0.3 L units off the formulas."""


def read(path) -> dict[str, torch.Tensor]:
    """As the pack reads a checkpoint: torch.load without pickled code, unwrapped."""
    return unwrap_state_dict(torch.load(path, map_location="cpu", weights_only=True))


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory):
    return save_ddcolor(tmp_path_factory.mktemp("ddcolor") / "ddcolor_paper_tiny.pth")


@pytest.fixture(scope="module")
def network(tiny_file):
    return ddcolor.build(read(tiny_file), TINY_INPUT_SIZE)


def photo(height: int, width: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """1 x C x H x W in [0, 1]: smooth colour shading, some texture, a little noise."""
    yy, xx = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    noise = torch.rand(3, height, width, generator=torch.Generator().manual_seed(seed)) * 0.1
    rgb = torch.stack([0.5 + 0.3 * torch.sin(xx / 40 + seed), 0.5 + 0.3 * torch.cos(yy / 50),
                       0.4 + 0.2 * torch.sin((xx + yy) / 70) + 0.05 * torch.sin(xx / 3)]) + noise - 0.05
    rgb = rgb.clamp(0, 1)
    if channels == 1:
        return rgb.mean(0, keepdim=True)[None]
    if channels == 2:
        return torch.stack([rgb.mean(0), torch.linspace(0, 1, width).expand(height, width)])[None]
    if channels == 4:
        return torch.cat([rgb, torch.linspace(1, 0, height)[:, None].expand(1, height, width)])[None]
    return rgb[None]


def gray_of(image: torch.Tensor) -> torch.Tensor:
    return image[:, :1].expand(-1, 3, -1, -1) if image.shape[1] in (1, 2) else image[:, :3]


def opencv_lab(image: torch.Tensor) -> np.ndarray:
    """H x W x 3 CIELAB of a 1 x 3 x H x W sRGB tensor, by OpenCV's float conversion (upstream's)."""
    import cv2

    return cv2.cvtColor(np.ascontiguousarray(image_array(image[0])), cv2.COLOR_RGB2Lab)


def in_srgb(lightness_: np.ndarray, ab: np.ndarray) -> np.ndarray:
    """Where CIELAB (L: H x W, a*, b*: 2 x H x W) lies inside sRGB, computed here from the
    definitions (OpenCV's D65 matrix and white), with a margin."""
    fy = (lightness_ + 16) / 116
    f = np.stack([fy + ab[0] / 500, fy, fy - ab[1] / 200])
    xyz = np.where(f > 6 / 29, f ** 3, (f - 16 / 116) / 7.787) * np.array([0.950456, 1.0, 1.088754])[:, None, None]
    to_rgb = np.linalg.inv(np.array([[0.412453, 0.357580, 0.180423], [0.212671, 0.715160, 0.072169],
                                     [0.019334, 0.119193, 0.950227]]))
    linear = np.einsum("ij,jhw->ihw", to_rgb, xyz)
    return ((linear > 1e-3) & (linear < 1 - 1e-3)).all(0)


# --- the file ------------------------------------------------------------------------------------


def test_the_released_format_is_read_and_built_at_its_size(tiny_file, network):
    reading = read_checkpoint_keys(str(tiny_file))  # how the loaders list files, without the tensors' data
    assert reading.problem is None and not reading.contents
    assert ddcolor.FILE.missing_markers(reading.keys) == ()
    assert "encoder.arch.head_cls.weight" in read(tiny_file)  # the classifier head the released files carry
    assert ddcolor.input_size_of(network) == TINY_INPUT_SIZE
    assert not network.training and all(p.dtype == torch.float32 and not p.requires_grad
                                        for p in network.parameters())


def test_the_catalogue_offers_the_released_files_modelscope_by_default():
    entries = [entry for entry in CATALOGUE if entry.kind == Kind.COLOURISER]
    assert {entry.name for entry in entries} == {"ddcolor_modelscope.pth", "ddcolor_artistic.pth",
                                                 "ddcolor_paper.pth", "ddcolor_paper_tiny.pth"}
    assert [entry.name for entry in entries if not entry.optional] == ["ddcolor_modelscope.pth"]
    assert DDCOLOR_FOLDER in MODEL_FOLDERS and ddcolor.FILE.files == tuple(entries)
    for entry in entries:
        assert entry.folder == DDCOLOR_FOLDER
        assert entry.download_url == f"https://huggingface.co/piddnad/DDColor-models/resolve/main/{entry.name}"


@pytest.mark.parametrize("size", [100, 32, 48, 4096, True, 512.0])
def test_sizes_ddcolor_cannot_take_are_refused(size, network):
    with pytest.raises(ValueError, match="multiple of 32"):
        ddcolor.check_input_size(size)
    with pytest.raises(ValueError, match="multiple of 32"):
        colourise(network, photo(8, 8), size)


def test_other_networks_are_refused_naming_what_they_are(tmp_path):
    from spandrel.architectures.ESRGAN import ESRGAN

    with pytest.raises(ValueError, match="it is a LaMa inpainting network, not a DDColor"):
        ddcolor.build(big_lama().state_dict())
    upscaler = ESRGAN(in_nc=3, out_nc=3, num_filters=8, num_blocks=1, scale=4)
    with pytest.raises(ValueError, match="it is an ESRGAN upscaler, not a DDColor"):
        ddcolor.build(upscaler.state_dict())
    scratches = read(save_scratch_detector(tmp_path / "FT_Epoch_latest.pt"))
    assert ddcolor.FILE.missing_markers(scratches)  # the loaders do not even offer it
    with pytest.raises(ValueError, match="not a DDColor network: spandrel recognises no architecture"):
        ddcolor.build(scratches)


# --- the colours ---------------------------------------------------------------------------------


def test_our_lab_is_opencvs():
    """The conversion the module measures lightness with is upstream's (OpenCV's float Lab), to the
    precision of OpenCV's lookup tables."""
    colours = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    colours[..., 0, :11] = torch.linspace(0, 1, 11)  # a gray ramp
    colours[..., 1, :3] = torch.eye(3)  # the primaries
    difference = np.abs(image_array(rgb_to_lab(colours)[0]) - opencv_lab(colours))
    assert difference[..., 0].max() < OPENCV_L_TOLERANCE and difference[..., 1:].max() < 1.0


def test_the_result_keeps_the_photos_lightness_at_full_resolution(network):
    image = photo(300, 517)
    result = colourise(network, image)
    assert result.shape == (1, 3, 300, 517) and result.dtype == torch.float32
    assert 0 <= result.min() and result.max() <= 1
    assert (lightness(result) - lightness(image)).abs().max() < L_TOLERANCE
    assert np.abs(opencv_lab(result)[..., 0] - opencv_lab(image)[..., 0]).max() < OPENCV_L_TOLERANCE
    chroma = rgb_to_lab(result)[:, 1:].norm(dim=1)
    assert chroma.mean() > 2 and chroma.std() > 1  # coloured, and not one colour


def test_the_colours_are_the_networks_where_srgb_holds_them(network):
    """a*, b* are the network's at its size, enlarged (bilinear): exactly, where that colour is in
    sRGB; elsewhere less saturated, never more, the lightness still the photo's."""
    image = torch.rand(1, 3, 150, 230, generator=torch.Generator().manual_seed(4))  # noise: strong colours
    result = colourise(network, image)
    ab = F.interpolate(predict_ab(network, network_input(image, TINY_INPUT_SIZE)), size=(150, 230),
                       mode="bilinear", align_corners=False)
    inside = in_srgb(lightness(image)[0, 0].numpy(), ab[0].numpy())
    assert 0.2 < inside.mean() < 0.99  # both kinds of colour are there
    lab = rgb_to_lab(result)
    error = (lab[0, 1:] - ab[0]).abs().amax(0).numpy()
    assert error[inside].max() < 0.05
    chroma, predicted = lab[0, 1:].norm(dim=0).numpy(), ab[0].norm(dim=0).numpy()
    assert (chroma[~inside] <= predicted[~inside] + 0.05).all()
    assert (lightness(result) - lightness(image)).abs().max() < L_TOLERANCE


@pytest.mark.parametrize("height, width", [(1, 1), (1, 9), (23, 1), (64, 64), (31, 200)])
@pytest.mark.parametrize("channels", [1, 2, 3, 4])
def test_any_size_gray_and_alpha(network, height, width, channels):
    image = photo(height, width, channels, seed=height + width)
    result = colourise(network, image)
    assert result.shape == (1, 3 if channels in (1, 3) else 4, height, width) and result.dtype == torch.float32
    assert (lightness(result[:, :3]) - lightness(gray_of(image))).abs().max() < L_TOLERANCE
    if channels in (2, 4):
        assert torch.equal(result[:, 3:], image[:, -1:])  # alpha as it is


@pytest.mark.parametrize("small, height", [(64, 150), (64, 64), (64, 1), (8, 301), (64, 37)])
def test_the_enlarged_colour_rows_are_bilinear_as_f_interpolate_gives_them(small, height):
    ab = torch.randn(1, 2, small, 50, generator=torch.Generator().manual_seed(small + height)) * 40
    expected = F.interpolate(ab, size=(height, 50), mode="bilinear", align_corners=False)
    # The same weights; PyTorch's kernel sums both directions in one expression: float rounding apart.
    torch.testing.assert_close(enlarged_rows(ab, height, 0, height), expected, atol=1e-3, rtol=1e-5)
    torch.testing.assert_close(enlarged_rows(ab, height, height // 3, height), expected[:, :, height // 3:],
                               atol=1e-3, rtol=1e-5)


@pytest.mark.parametrize("rows", [1, 7, 64])
def test_the_colour_maths_in_bands_of_rows_gives_the_same_values_as_one_band(network, rows):
    """Device memory follows the band, not the photo, and the result does not depend on the band
    (each pixel's arithmetic is the same; vectorised kernels may round a last bit differently)."""
    image = photo(150, 230, seed=9)
    calls = []
    banded = colourise(network, image, rows=rows, check_band=lambda: calls.append(1))
    torch.testing.assert_close(banded, colourise(network, image, rows=150), atol=1e-6, rtol=0)
    assert len(calls) == -(-150 // rows) - 1
    assert (lightness(banded) - lightness(image)).abs().max() < L_TOLERANCE


def test_a_band_fits_its_budget_and_has_at_least_one_row():
    assert band_rows(4000) == COLOUR_BAND_BYTES // (4000 * 112)
    assert band_rows(10 ** 9) == 1


def test_a_batch_runs_one_photo_at_a_time(network):
    photos = torch.cat([photo(90, 140, seed=2), photo(90, 140, seed=5)])
    calls = []
    result = colourise(network, photos, check_interrupt=lambda: calls.append(1))
    assert len(calls) == 2
    for index in range(2):
        alone = colourise(network, photos[index:index + 1])
        torch.testing.assert_close(result[index:index + 1], alone, atol=1e-5, rtol=0)

    def interrupt():
        calls.append(1)
        if len(calls) > 3:
            raise InterruptedError("cancelled")

    with pytest.raises(InterruptedError):
        colourise(network, photos, check_interrupt=interrupt)


def test_it_runs_in_the_networks_dtype_and_gives_float32_on_the_photos_device(tiny_file):
    network = ddcolor.build(read(tiny_file), TINY_INPUT_SIZE).to(torch.bfloat16)
    seen = []
    network.register_forward_hook(lambda module, inputs, output: seen.append((inputs[0].dtype, output.dtype)))
    image = photo(70, 45, channels=4, seed=6).double()
    result = colourise(network, image)
    assert seen == [(torch.bfloat16, torch.bfloat16)]
    assert result.dtype == torch.float32 and result.device == image.device
    assert (lightness(result[:, :3]) - lightness(image[:, :3].float())).abs().max() < L_TOLERANCE


def test_the_network_sees_and_gives_what_spandrels_own_call_does(tiny_file, network):
    """At the network's size (nothing resized), on a gray photo: spandrel's DDColor call (gamma 2.2
    Lab) and the pack's (sRGB Lab, upstream's) feed the network the same gray and get the same a*,
    b* from it; and the pack's build is spandrel's network."""
    import spandrel
    import spandrel_extra_arches

    spandrel_extra_arches.install(ignore_duplicates=True)
    descriptor = spandrel.ModelLoader().load_from_state_dict(read(tiny_file))
    descriptor.model.input_size = (TINY_INPUT_SIZE, TINY_INPUT_SIZE)
    calls = []
    descriptor.model.register_forward_hook(lambda module, inputs, output: calls.append((inputs[0], output)))
    gray = photo(TINY_INPUT_SIZE, TINY_INPUT_SIZE, channels=1, seed=8)
    descriptor(gray)
    colourise(descriptor, gray)  # a descriptor is taken as its network
    (theirs_in, theirs_out), (ours_in, ours_out) = calls
    assert ours_in.shape == theirs_in.shape == (1, 3, TINY_INPUT_SIZE, TINY_INPUT_SIZE)
    torch.testing.assert_close(ours_in, gray.expand(-1, 3, -1, -1), atol=1e-5, rtol=0)
    torch.testing.assert_close(ours_in, theirs_in, atol=1e-3, rtol=0)
    spread = theirs_out.abs().max().item()
    torch.testing.assert_close(ours_out, theirs_out, atol=1e-3 * spread, rtol=0)
    with torch.no_grad():
        torch.testing.assert_close(network(ours_in), descriptor.model(ours_in), atol=0, rtol=0)
