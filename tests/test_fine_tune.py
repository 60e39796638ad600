"""SSDiff Fine-tune Restorer in the real host on the tiny CodeFormer: the loss falls, the saved
file reloads through the loader and predicts held-out targets better than the original, the
loaded restorer stays as it was, a second run never overwrites, the same seed trains the same
weights, Cancel keeps nothing, and LPIPS loads for the restorers trained on pixels."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from node_runner import execute
from comfyui_ssdiff.models.face_restorers.codeformer import code_logits, encode, face_size, nearest_codes
from comfyui_ssdiff.priors.coarse import restorer_input

SETTINGS = {"learning_rate": 1e-3, "batch_size": 2, "seed": 3, "ema_decay": 0.0, "train": "transformer_only"}


@pytest.fixture
def restorer_folder(comfy, models_root, tmp_path, monkeypatch):
    """models/facerestore_models as a fresh folder first (where files are saved), then the test
    models' own."""
    import folder_paths

    extensions = folder_paths.folder_names_and_paths["facerestore_models"][1]
    monkeypatch.setitem(folder_paths.folder_names_and_paths, "facerestore_models",
                        ([str(tmp_path), str(models_root / "facerestore_models")], extensions))
    monkeypatch.setattr(folder_paths, "filename_list_cache", {})
    return tmp_path


def face_pairs(count: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Smooth synthetic faces (targets) and blurred, noisy copies of them (degraded), 64 px."""
    generator = torch.Generator().manual_seed(seed)
    targets = F.interpolate(torch.rand(count, 3, 8, 8, generator=generator), size=64, mode="bicubic").clamp(0, 1)
    degraded = (F.avg_pool2d(targets, 5, 1, 2) + 0.05 * torch.randn(count, 3, 64, 64, generator=generator))
    return degraded.clamp(0, 1).movedim(1, -1), targets.movedim(1, -1)


def target_codes(original: torch.nn.Module, targets: torch.Tensor) -> torch.Tensor:
    """The codes the original network's encoder and quantizer give the targets."""
    with torch.no_grad():
        return nearest_codes(original, encode(original, restorer_input(targets.movedim(-1, 1), face_size(original)))[0])


def code_accuracy(network: torch.nn.Module, degraded: torch.Tensor, wanted: torch.Tensor) -> float:
    """How often the restorer's code prediction on a degraded face is the target's own code."""
    with torch.no_grad():
        logits = code_logits(network, encode(network, restorer_input(degraded.movedim(-1, 1), face_size(network)))[0])
    return float((logits.argmax(-1) == wanted).float().mean())


def weights(network: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in network.state_dict().items()}


def test_fine_tuning_lowers_the_loss_saves_a_file_that_reloads_and_predicts_held_out_targets_better(
        comfy, restorer_folder):
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    original = weights(restorer.network)
    degraded, targets = face_pairs(12)
    tuned, plot, losses, saved_as = execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer,
                                            degraded=degraded[:8], targets=targets[:8], steps=20,
                                            save_name="archive_restorer", **SETTINGS)
    losses = json.loads(losses)
    assert len(losses) == 20 and sum(losses[-3:]) < sum(losses[:3])
    assert plot.shape[0] == 1 and plot.shape[-1] == 3 and plot.std() > 0
    assert all(torch.equal(value, original[key]) for key, value in restorer.network.state_dict().items())

    assert saved_as == "archive_restorer_00001.safetensors"
    assert sorted(path.name for path in restorer_folder.iterdir()) == [saved_as]
    reloaded, = execute(comfy, "SSDiffFaceRestorerLoader", model_name=saved_as)
    assert reloaded.architecture == "CodeFormer"
    assert all(torch.equal(value, tuned.network.state_dict()[key]) for key, value in
               reloaded.network.state_dict().items())
    wanted = target_codes(restorer.network, targets[8:])
    before = code_accuracy(restorer.network, degraded[8:], wanted)
    after = code_accuracy(reloaded.network, degraded[8:], wanted)
    assert after > before + 0.05, (before, after)


def test_the_released_fine_tune_trains_encoder_and_transformer_and_freezes_codebook_generator_and_fusion(
        comfy, restorer_folder):
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = face_pairs(1, seed=4)
    released = {**SETTINGS, "train": "encoder_and_transformer"}
    tuned, _, losses, _ = execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded,
                                  targets=targets, steps=1, save_name="", **released)
    original, trained = restorer.network.state_dict(), tuned.network.state_dict()
    changed = {key.split(".", 1)[0] for key in original if not torch.equal(original[key], trained[key])}
    assert changed == {"encoder", "position_emb", "feat_emb", "ft_layers", "idx_pred_layer"}
    assert len(json.loads(losses)) == 1 and list(restorer_folder.iterdir()) == []


def test_cancel_keeps_nothing(comfy, restorer_folder):
    import comfy.model_management as model_management

    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = face_pairs(1, seed=2)
    model_management.interrupt_current_processing(True)
    try:
        with pytest.raises(model_management.InterruptProcessingException):
            execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, targets=targets, steps=50,
                    save_name="cancelled", **SETTINGS)
    finally:
        model_management.interrupt_current_processing(False)
    assert list(restorer_folder.iterdir()) == []


def test_targets_that_do_not_pair_with_the_faces_are_refused(comfy, restorer_folder):
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = face_pairs(2)
    with pytest.raises(ValueError, match="give one target per degraded face"):
        execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, targets=targets[:1], steps=1,
                save_name="", **SETTINGS)


def write_pairs(folder, degraded: torch.Tensor, targets: torch.Tensor) -> None:
    from PIL import Image

    for sub, images in (("degraded", degraded), ("targets", targets)):
        (folder / sub).mkdir(parents=True)
        for index, image in enumerate(images):
            Image.fromarray((image.numpy() * 255).round().astype("uint8")).save(folder / sub / f"face_{index}.png")


def test_pairs_from_a_folder_train_the_same_weights_as_wired_for_a_seed_and_a_second_save_never_overwrites(
        comfy, restorer_folder, tmp_path, monkeypatch):
    import folder_paths

    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = (torch.round(images * 255) / 255 for images in face_pairs(1, seed=5))
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path / "input"))
    write_pairs(tmp_path / "input" / "archive_pairs", degraded, targets)
    from_folder = execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, steps=2, save_name="same_seed",
                          pairs_folder="archive_pairs", **SETTINGS)
    wired = execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, targets=targets, steps=2,
                    save_name="same_seed", **SETTINGS)
    assert from_folder[2] == wired[2]
    assert [from_folder[3], wired[3]] == ["same_seed_00001.safetensors", "same_seed_00002.safetensors"]
    first, second = from_folder[0].network.state_dict(), wired[0].network.state_dict()
    assert all(torch.equal(first[key], second[key]) for key in first)
    both = execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, targets=targets, steps=1,
                   save_name="both", pairs_folder=" archive_pairs [input] ", **SETTINGS)
    from safetensors import safe_open

    with safe_open(str(restorer_folder / both[3]), "pt") as saved:
        assert json.loads(saved.metadata()["ssdiff_fine_tune"])["pairs"] == 2


def test_a_folder_of_unpaired_or_missing_images_is_refused_naming_the_input(comfy, restorer_folder, tmp_path,
                                                                            monkeypatch):
    import folder_paths

    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = face_pairs(2)
    monkeypatch.setattr(folder_paths, "get_input_directory", lambda: str(tmp_path / "input"))
    write_pairs(tmp_path / "input" / "pairs", degraded, targets[:1])
    (tmp_path / "input" / "empty").mkdir()
    for folder, message in (("pairs", "pairs_folder: 1 image.*face_1.png"),
                            ("nowhere", "pairs_folder: no folder 'nowhere' in ComfyUI's input folder"),
                            ("empty", "pairs_folder: 'empty' has no degraded/ folder")):
        with pytest.raises(ValueError, match=message):
            execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, steps=1, save_name="",
                    pairs_folder=folder, **SETTINGS)
    with pytest.raises(ValueError, match="no training pairs"):
        execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, steps=1, save_name="", **SETTINGS)
    with pytest.raises(ValueError, match="connect both degraded and targets"):
        execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, steps=1, save_name="",
                **SETTINGS)


def test_the_perceptual_loss_loads_through_its_loader_and_codeformer_refuses_it(comfy, restorer_folder):
    perceptual_loss, = execute(comfy, "SSDiffPerceptualLossLoader", model_name="vgg16-397923af.pth", weight=0.25)
    assert perceptual_loss.weight == 0.25
    images = torch.rand(2, 3, 64, 64) * 2 - 1
    assert float(perceptual_loss(images, images)) == 0.0 < float(perceptual_loss(images, images.flip(-1)))
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = face_pairs(1)
    with pytest.raises(ValueError, match="^perceptual_loss: CodeFormer is fine-tuned on its codes"):
        execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, targets=targets, steps=1,
                save_name="", perceptual_loss=perceptual_loss, **SETTINGS)


@pytest.mark.parametrize("save_name", ["../outside", "sub/name", ".hidden"])
def test_a_save_name_that_is_no_plain_file_name_is_refused_before_any_training(comfy, pack, restorer_folder,
                                                                               monkeypatch, save_name):
    restorer, = execute(comfy, "SSDiffFaceRestorerLoader", model_name="codeformer.pth")
    degraded, targets = face_pairs(1)

    def trained(*_, **__):
        raise AssertionError("the training ran before the save name was checked")

    monkeypatch.setattr(pack.nodes.fine_tune, "fine_tune", trained)
    assert "must be a plain file name" in pack.nodes.fine_tune.SSDiffFineTuneRestorer.validate_inputs(save_name)
    with pytest.raises(ValueError, match="must be a plain file name"):
        execute(comfy, "SSDiffFineTuneRestorer", restorer=restorer, degraded=degraded, targets=targets, steps=1000,
                save_name=save_name, **SETTINGS)
    assert list(restorer_folder.iterdir()) == []
