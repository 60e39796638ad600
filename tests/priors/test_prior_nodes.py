"""The prior networks as nodes in the real host, loading tiny random networks of the real
architectures saved as their published files are (tests/conftest.py, harness/tiny_models.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from node_runner import execute
from comfyui_ssdiff.priors.parsing import PARSENET_TO_CELEBAMASK_HQ, FaceParser, parse_faces, pil_nearest_indices
from stage_settings import ONE_STOP_SETTINGS, SELECTIVE_SETTINGS



def faces(batch=1, height=64, width=48, seed=0):
    return torch.rand(batch, height, width, 3, generator=torch.Generator().manual_seed(seed))


class FixedLogits(torch.nn.Module):
    """A parser stand-in whose argmax is `label` everywhere."""

    def __init__(self, label: int):
        super().__init__()
        self.label = label
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x):
        logits = torch.zeros(x.shape[0], 19, *x.shape[-2:])
        logits[:, self.label] = 1
        return logits, None


def test_parsenet_labels_are_reported_in_celebamask_hq_order():
    assert sorted(PARSENET_TO_CELEBAMASK_HQ) == list(range(19))
    image = torch.rand(1, 3, 20, 30)
    hair = parse_faces(FaceParser(FixedLogits(13), "parsenet"), image)
    lower_lip = parse_faces(FaceParser(FixedLogits(13), "bisenet_resnet"), image)
    assert hair.shape == (1, 20, 30)
    assert (hair == 17).all() and (lower_lip == 13).all()


@pytest.mark.parametrize("model_name, backend", [("parsing_parsenet.pth", "parsenet"),
                                                 ("parsing_bisenet.pth", "bisenet_facexlib"),
                                                 ("resnet34.pt", "bisenet_resnet")])
def test_face_parse_with_each_parser(comfy, model_name, backend):
    parser, = execute(comfy, "SSDiffFaceParserLoader", model_name=model_name)
    assert parser.backend == backend
    parsing, mask, preview = execute(comfy, "SSDiffFaceParse", parser=parser, image=faces(2),
                                     regions="face, hair", reference_compat=False)
    assert parsing.shape == (2, 64, 48) and parsing.dtype == torch.long
    assert 0 <= parsing.min() and parsing.max() <= 18
    assert mask.shape == (2, 64, 48) and set(mask.unique().tolist()) <= {0.0, 1.0}
    face_or_hair = torch.isin(parsing, torch.tensor([1, 2, 3, 4, 5, 10, 11, 12, 13, 17]))
    assert torch.equal(mask.bool(), face_or_hair)
    assert preview.shape == (2, 64, 48, 3)


def test_face_parse_refuses_unknown_regions(comfy):
    message = comfy.NODE_CLASS_MAPPINGS["SSDiffFaceParse"].validate_inputs(regions="face, beard")
    assert isinstance(message, str) and "beard" in message and "hair" in message


def test_scratch_mask_on_a_photo_with_drawn_scratches(comfy):
    detector, = execute(comfy, "SSDiffScratchDetectorLoader", model_name="FT_Epoch_latest.pt")
    photo = torch.full((1, 90, 70, 3), 0.4)
    photo[:, 30, :, :] = 1.0
    photo[:, :, 20, :] = 0.95
    add = torch.zeros(1, 90, 70)
    add[0, 80:85, 10:20] = 1
    erase = torch.zeros(1, 90, 70)
    erase[0, :, :35] = 1
    mask, probability = execute(comfy, "SSDiffScratchMask", detector=detector, image=photo, threshold=0.4,
                                dilation=2, resize_mode="full_size", add_mask=add, erase_mask=erase)
    assert mask.shape == probability.shape == (1, 90, 70)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert 0 <= probability.min() and probability.max() <= 1
    assert (mask[0, :, :35] == 0).all()
    everything, _ = execute(comfy, "SSDiffScratchMask", detector=detector, image=photo, threshold=0.0,
                            dilation=0, resize_mode="scale_256", add_mask=add)
    assert (everything == 1).all()


def test_colour_transfer_node_with_cap_vstnet_and_the_built_in_fallback(comfy):
    transfer, = execute(comfy, "SSDiffColourTransferLoader", model_name="photo_image.pt")
    content, style = faces(1, 40, 36, seed=1), faces(1, 40, 36, seed=2) * 0.3
    region = torch.zeros(1, 40, 36)
    region[:, 10:30, 8:28] = 1
    for colour_transfer in (transfer, None):
        recoloured, = execute(comfy, "SSDiffColourTransfer", content=content, style=style, region=region,
                              colour_transfer=colour_transfer)
        assert recoloured.shape == content.shape
        outside = region[0] == 0
        assert torch.allclose(recoloured[0][outside], content[0][outside], atol=1e-6)
        assert not torch.allclose(recoloured[0][~outside], content[0][~outside], atol=1e-3)


def test_coarse_restore_with_codeformer_and_its_fidelity(comfy):
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    assert restorer.architecture == "CodeFormer"
    face = faces(1, 96, 96)
    quality, = execute(comfy, "SSDiffCoarseRestore", restorer=restorer, image=face, fidelity=0.0)
    fidelity, = execute(comfy, "SSDiffCoarseRestore", restorer=restorer, image=face, fidelity=1.0)
    toned, = execute(comfy, "SSDiffCoarseRestore", restorer=restorer, image=face, fidelity=1.0, adain=True)
    assert quality.shape == face.shape and 0 <= quality.min() and quality.max() <= 1
    assert not torch.allclose(quality, fidelity)
    assert not torch.allclose(fidelity, toned, atol=1e-3), "adain is an input, off by default"


@pytest.mark.parametrize("node_id, wrong_file, expected", [
    ("SSDiffScratchDetectorLoader", "resnet34.pt", "FT_Epoch_latest.pt"),
    ("SSDiffColourTransferLoader", "FT_Epoch_latest.pt", "photo_image.pt"),
    ("SSDiffFaceParserLoader", "photo_image.pt", "parsing_parsenet.pth"),
    ("SSDiffFaceRestorerLoader", "codeformer_missing.pth", "codeformer.pth"),
])
def test_a_wrong_or_missing_file_names_what_was_expected_and_where_to_get_it(comfy, node_id, wrong_file,
                                                                             expected):
    node = comfy.NODE_CLASS_MAPPINGS[node_id]
    verdict = node.validate_inputs(model_name=wrong_file)
    if verdict is True:
        with pytest.raises(ValueError) as error:
            execute(comfy, node_id, model_name=wrong_file)
        verdict = str(error.value)
    assert expected in verdict and "http" in verdict


def test_selective_sampler_takes_the_loaded_colour_transfer(comfy):
    model, _ = execute(comfy, "SSDiffFaceDiffusionLoader", ckpt_name="tiny_face_ddpm.pth", weight_dtype="fp32")
    transfer, = execute(comfy, "SSDiffColourTransferLoader", model_name="photo_image.pt")
    face = faces(1, 32, 32)
    restored, = execute(comfy, "SSDiffSampler", model=model, image=face, coarse_restoration=face,
                        pseudo_reference=face, colour_transfer=transfer,
                        **{**SELECTIVE_SETTINGS, **ONE_STOP_SETTINGS, "t1": 0.5}, seed=1, steps=4)
    assert restored.shape == face.shape and torch.isfinite(restored).all()


def test_reference_compat_runs_the_loaded_cap_vstnet_as_the_released_code(comfy, pack):
    transfer, = execute(comfy, "SSDiffColourTransferLoader", model_name="photo_image.pt")
    face = faces(1, 32, 32)
    settings = {name: value for name, value in SELECTIVE_SETTINGS.items()
                if name not in ("base_sampler", "latent_guidance", "reference_compat")}
    for reference_compat in (False, True):
        used = pack.nodes.stage_guidance.selective_guidance(face, face, face, settings, reference_compat,
                                                            colour_transfer=transfer).colour_transfer
        assert used.network is transfer.network and used.released_code is reference_compat


class StripedLogits(torch.nn.Module):
    """A parser stand-in whose labels at 512 px are fine diagonal stripes of every class."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    @staticmethod
    def labels(size: int = 512) -> torch.Tensor:
        rows, columns = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
        return (rows * 7 + columns * 3) // 5 % 19

    def forward(self, x):
        return torch.nn.functional.one_hot(self.labels(), 19).permute(2, 0, 1)[None].float().expand(
            x.shape[0], -1, -1, -1), None


def test_labels_are_resized_back_as_the_reference_does_with_pil_nearest():
    from PIL import Image

    photo = torch.rand(1, 3, 400, 600)
    labels = parse_faces(FaceParser(StripedLogits(), "bisenet_resnet"), photo)
    reference = Image.fromarray(StripedLogits.labels().numpy().astype("uint8")).resize((600, 400), Image.NEAREST)
    assert torch.equal(labels[0], torch.from_numpy(np.array(reference)).long())
    assert torch.equal(pil_nearest_indices(600, 512)[37:38], torch.tensor([31])), "the tie PIL rounds down"
