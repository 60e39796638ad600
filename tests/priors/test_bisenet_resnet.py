"""yakhyo/face-parsing's BiSeNet (SSDiff's parser): layout of the published files, loading, outputs.

Key names, counts and shapes were checked against yakhyo/face-parsing `models/bisenet.py` and
`models/resnet.py` (unchanged in names since its first commit; SSDiff's copy in
`guided_diffusion/face_parsing/` differs only in returning the fused feature too): same keys in the
same order, and bit-identical outputs with the same weights. Upstream's `inference.py` loads the
published `.pt` files strictly, so they hold exactly these keys, the backbone's `fc` included.
"""
from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file, save_file

from comfyui_ssdiff.models.face_parsing import ResNetBiSeNet, resnet_bisenet_from_state_dict
from comfyui_ssdiff.priors.parsing import IMAGENET_MEAN, IMAGENET_STD, normalise_for_parsing

# backbone -> (state-dict entries, parameter tensors, parameters)
LAYOUT = {
    "resnet34": (289, 148, 23_921_576),
    "resnet18": (193, 100, 13_813_416),
}


def meta_network(backbone: str) -> ResNetBiSeNet:
    with torch.device("meta"):
        return ResNetBiSeNet(backbone=backbone)


def random_network(backbone: str, seed: int = 0) -> ResNetBiSeNet:
    """Random weights and random BatchNorm statistics, so that eval mode is not an identity."""
    torch.manual_seed(seed)
    network = ResNetBiSeNet(backbone=backbone)
    with torch.no_grad():
        for module in network.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.weight.uniform_(0.5, 1.5)
                module.bias.normal_(0.0, 0.1)
                module.running_mean.normal_(0.0, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    return network.eval()


@pytest.mark.parametrize("backbone", sorted(LAYOUT))
def test_layout_matches_the_published_files(backbone):
    network = meta_network(backbone)
    state_dict = network.state_dict()
    entries, tensors, numel = LAYOUT[backbone]
    assert len(state_dict) == entries
    assert len(list(network.parameters())) == tensors
    assert sum(p.numel() for p in network.parameters()) == numel
    assert next(iter(state_dict)) == "fpn.backbone.conv1.weight"
    shapes = {key: tuple(value.shape) for key, value in state_dict.items()}
    expected = {
        "fpn.backbone.layer1.0.conv1.weight": (64, 64, 3, 3),
        "fpn.backbone.layer2.0.downsample.0.weight": (128, 64, 1, 1),
        "fpn.backbone.layer4.1.bn2.num_batches_tracked": (),
        "fpn.backbone.fc.weight": (1000, 512),
        "fpn.backbone.fc.bias": (1000,),
        "fpn.arm16.conv_block.conv.weight": (128, 256, 3, 3),
        "fpn.arm32.attention.0.weight": (128, 128, 1, 1),
        "fpn.arm32.attention.1.running_var": (128,),
        "fpn.conv_head32.norm.weight": (128,),
        "fpn.conv_head16.conv.weight": (128, 128, 3, 3),
        "fpn.conv_avg.conv.weight": (128, 512, 1, 1),
        "ffm.conv_block.conv.weight": (256, 256, 1, 1),
        "ffm.conv1.weight": (64, 256, 1, 1),
        "ffm.conv2.weight": (256, 64, 1, 1),
        "conv_out.conv_block.conv.weight": (256, 256, 3, 3),
        "conv_out.conv.weight": (19, 256, 1, 1),
        "conv_out16.conv_block.conv.weight": (64, 128, 3, 3),
        "conv_out16.conv.weight": (19, 64, 1, 1),
        "conv_out32.conv.weight": (19, 64, 1, 1),
    }
    assert {key: shapes.get(key) for key in expected} == expected
    assert not any(key.endswith(".bias") for key in state_dict
                   if "conv" in key.rsplit(".", 2)[-2])  # every convolution is bias-free
    assert ("fpn.backbone.layer1.2.conv1.weight" in state_dict) == (backbone == "resnet34")
    assert ("fpn.backbone.layer3.5.bn2.weight" in state_dict) == (backbone == "resnet34")
    assert "fpn.backbone.layer3.6.conv1.weight" not in state_dict


def test_unknown_backbone_is_refused():
    with pytest.raises(ValueError, match="resnet18"):
        ResNetBiSeNet(backbone="resnet50")


@pytest.mark.parametrize("backbone", ["resnet18", "resnet34"])
def test_pt_and_safetensors_round_trip_gives_identical_outputs(backbone, tmp_path):
    network = random_network(backbone)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        expected = network(normalise_for_parsing(x))

    state_dict = network.state_dict()
    torch.save(state_dict, tmp_path / f"{backbone}.pt")
    save_file(state_dict, str(tmp_path / f"{backbone}.safetensors"))
    sources = {
        ".pt": torch.load(tmp_path / f"{backbone}.pt", map_location="cpu", weights_only=True),
        ".safetensors": load_file(str(tmp_path / f"{backbone}.safetensors")),
    }
    sources["module."] = {f"module.{key}": value for key, value in sources[".pt"].items()}
    for source, loaded_state in sources.items():
        loaded = resnet_bisenet_from_state_dict(loaded_state)
        assert loaded.backbone_name == backbone, source
        assert not loaded.training, source
        with torch.no_grad():
            got = loaded(normalise_for_parsing(x))
        assert len(got) == 3, source
        assert all(torch.equal(a, b) for a, b in zip(got, expected)), source
    assert expected[0].shape == (1, 19, 64, 64)


def test_outputs_are_logits_at_the_input_size():
    network = random_network("resnet18", seed=1)
    x = normalise_for_parsing(torch.rand(2, 3, 72, 56))  # not a multiple of 32
    with torch.no_grad():
        out, out16, out32 = network(x)
        *heads, fused = network(x, return_fused=True)
    for logits in (out, out16, out32):
        assert logits.shape == (2, 19, 72, 56)
        assert torch.isfinite(logits).all()
    assert all(torch.equal(a, b) for a, b in zip(heads, (out, out16, out32)))
    assert fused.shape == (2, 256, 9, 7)  # the 1/8-scale fused feature (SSDiff's fourth output)


def test_class_count_is_read_from_the_head():
    torch.manual_seed(0)
    state_dict = ResNetBiSeNet(num_classes=11, backbone="resnet18").state_dict()
    loaded = resnet_bisenet_from_state_dict(state_dict)
    assert loaded.num_classes == 11
    assert loaded.conv_out32.conv.weight.shape[0] == 11


def test_another_architecture_is_refused_naming_the_marker_key():
    facexlib_like = {"cp.resnet.conv1.weight": torch.zeros(64, 3, 7, 7)}
    with pytest.raises(ValueError, match=r"fpn\.backbone\.layer1\.0\.conv1\.weight.*facexlib"):
        resnet_bisenet_from_state_dict(facexlib_like)
    with pytest.raises(ValueError, match=r"fpn\.backbone\.layer1\.0\.conv1\.weight"):
        resnet_bisenet_from_state_dict({"input_blocks.0.0.weight": torch.zeros(1)})


def test_a_truncated_checkpoint_fails_the_strict_load():
    state_dict = meta_network("resnet18").state_dict()
    state_dict = {key: torch.zeros(value.shape) for key, value in state_dict.items()
                  if not key.startswith("fpn.backbone.fc.")}
    with pytest.raises(RuntimeError, match="fpn.backbone.fc.weight"):
        resnet_bisenet_from_state_dict(state_dict)


def test_building_and_loading_never_touch_the_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", refuse)
    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    network = ResNetBiSeNet(backbone="resnet34")
    resnet_bisenet_from_state_dict(network.state_dict())


def test_normalisation_is_imagenet_mean_and_std():
    image = torch.stack([torch.zeros(3, 4, 4), torch.ones(3, 4, 4)])
    out = normalise_for_parsing(image)
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(out[0], (-mean / std).expand(3, 4, 4))
    torch.testing.assert_close(out[1], ((1 - mean) / std).expand(3, 4, 4))
    assert normalise_for_parsing(image.half()).dtype == torch.float16
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        normalise_for_parsing(torch.rand(3, 8, 8))
