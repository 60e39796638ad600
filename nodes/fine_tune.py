"""Fine-tune Restorer: a fast face restorer trained on the archive's own faces and their SSDiff
restorations or pseudo-targets, then used by SSDiff Coarse Restore on every other face."""
from __future__ import annotations

import json
import os

import torch
from comfy_api.latest import io

from ..comfy_adapter import checkpoints, image_folders, managed, progress
from ..models import perceptual_loss as lpips_vgg
from ..models.face_restorers import FaceRestorer
from ..models.files import FACE_RESTORE_FOLDER
from ..priors.plots import line_plot
from ..training.fine_tune import FineTuneSettings, fine_tune
from ..training.losses import PerceptualLoss
from ..training.pairs import training_pairs
from ..training.recipes import TRAINED_PARTS, recipe_of
from . import boundary
from .input_checks import checked_inputs
from .loaders import CheckpointLoader
from .types import FaceRestorerType, PerceptualLossType


class SSDiffPerceptualLossLoader(CheckpointLoader):
    FILE = lpips_vgg.FILE

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffPerceptualLossLoader",
            display_name="SSDiff Perceptual Loss Loader (LPIPS)",
            category="SSDiff/archive",
            description=("LPIPS on torchvision's VGG16 (vgg16-397923af.pth), for SSDiff Fine-tune Restorer: "
                         "GFPGAN / RestoreFormer then learn from L1 + weight x LPIPS, as Kuai et al. fine-tune."),
            inputs=[cls.checkpoint_input(),
                    io.Float.Input("weight", default=lpips_vgg.DEFAULT_WEIGHT, min=0.0, max=10.0, step=0.01,
                                   tooltip="LPIPS beside the L1 pixel loss (weight 1); the paper: 0.1")],
            outputs=[PerceptualLossType.Output(display_name="perceptual_loss")],
        )

    @classmethod
    @checked_inputs
    def execute(cls, model_name: str, weight: float) -> io.NodeOutput:
        return io.NodeOutput(PerceptualLoss(cls.load(model_name, lpips_vgg.build), weight))


class SSDiffFineTuneRestorer(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffFineTuneRestorer",
            display_name="SSDiff Fine-tune Restorer",
            category="SSDiff/archive",
            description=("Trains a copy of the restorer on degraded faces and their targets (SSDiff "
                         "restorations or SSDiff Pseudo Targets), as Kuai et al. fine-tune CodeFormer; "
                         "GFPGAN / RestoreFormer with an L1 pixel loss, plus LPIPS where perceptual_loss is "
                         "connected. The restorer given is left as it was. The result is saved into "
                         "models/facerestore_models as <save_name>_<n>.safetensors (never over a file) for "
                         "SSDiff Face Restorer Loader. pairs_folder is read only inside ComfyUI's input (or output) folder, as "
                         "ComfyUI's own nodes read."),
            inputs=[
                FaceRestorerType.Input("restorer",
                                       tooltip="the restorer to start from (SSDiff Face Restorer Loader); it is "
                                               "copied, not changed"),
                io.Image.Input("degraded", optional=True, tooltip="aligned faces, as SSDiff Face Crop gives them"),
                io.Image.Input("targets", optional=True, tooltip="one target per degraded face, in the same order"),
                io.Int.Input("steps", default=1000, min=1, max=1_000_000,
                             tooltip="training steps (the paper: 40000 at batch 8)"),
                io.Float.Input("learning_rate", default=1e-4, min=1e-7, max=1e-1, step=1e-5,
                               tooltip="Adam's; halved at 87.5 % and 95 % of the steps"),
                io.Int.Input("batch_size", default=4, min=1, max=64, tooltip="the paper: 8"),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="batches and flips; the same seed trains the same weights on the CPU"),
                io.Float.Input("ema_decay", default=0.995, min=0.0, max=0.9999, step=0.0005,
                               tooltip="the saved weights average the last ~1/(1 - decay) steps (the paper: "
                                       "0.995); 0 keeps the last step's"),
                io.Combo.Input("train", options=list(TRAINED_PARTS), default=TRAINED_PARTS[0],
                               tooltip="CodeFormer: its encoder and transformer, as the released fine-tune, "
                                       "or the transformer alone (several times faster)"),
                io.String.Input("save_name", default="ssdiff_finetuned_restorer",
                                tooltip="file name before _<n>.safetensors; empty: not saved"),
                io.String.Input("pairs_folder", default="", optional=True,
                                tooltip="more pairs: the name of a folder inside ComfyUI's input folder ('my_pairs'; "
                                        "'my_pairs [output]' for one in the output folder) with degraded/ and "
                                        "targets/ holding aligned faces under the same file names. Only ComfyUI's "
                                        "own folders are read: absolute paths, '..' and links out are refused"),
                PerceptualLossType.Input("perceptual_loss", optional=True,
                                         tooltip="GFPGAN / RestoreFormer: LPIPS joins the L1 pixel loss "
                                                 "(SSDiff Perceptual Loss Loader)"),
            ],
            outputs=[FaceRestorerType.Output(display_name="restorer"), io.Image.Output(display_name="loss_plot"),
                     io.String.Output(display_name="losses"), io.String.Output(display_name="saved_as")],
        )

    @classmethod
    def validate_inputs(cls, save_name: str | None = None) -> bool | str:
        """A save name with folders or a leading dot is refused when the prompt is queued."""
        if save_name is None or not save_name.strip():
            return True
        try:
            checkpoints.check_save_name(save_name.strip())
        except checkpoints.CheckpointError as error:
            return str(error)
        return True

    @classmethod
    @checked_inputs
    def execute(cls, restorer: FaceRestorer, steps: int, learning_rate: float, batch_size: int, seed: int,
                ema_decay: float, train: str, save_name: str, degraded: torch.Tensor | None = None,
                targets: torch.Tensor | None = None, pairs_folder: str = "",
                perceptual_loss: PerceptualLoss | None = None) -> io.NodeOutput:
        degraded_faces, target_faces = training_pairs(
            None if degraded is None else boundary.image_to_rgb(degraded),
            None if targets is None else boundary.image_to_rgb(targets), folder_pairs(pairs_folder),
            restorer.face_size)
        settings = FineTuneSettings(steps, learning_rate, batch_size, seed, ema_decay,
                                    transformer_only=train == "transformer_only")
        managed.load(restorer.network)
        result = fine_tune(restorer, degraded_faces, target_faces, settings, progress.step_reporter(steps),
                           perceptual_loss)
        saved_as = ""
        if save_name.strip():
            saved_as = os.path.basename(checkpoints.save_new_checkpoint(
                FACE_RESTORE_FOLDER, save_name.strip(), result.restorer.network.state_dict(),
                {"ssdiff_fine_tune": json.dumps({"architecture": result.restorer.architecture, "steps": steps,
                                                 "learning_rate": learning_rate, "batch_size": batch_size,
                                                 "seed": seed, "ema_decay": ema_decay, "train": train,
                                                 "pairs": len(degraded_faces),
                                                 "perceptual_loss_weight": None if perceptual_loss is None
                                                 else perceptual_loss.weight})}))
        loss_name = recipe_of(restorer.architecture).loss_name(None if perceptual_loss is None
                                                               else perceptual_loss.weight)
        plot = line_plot({loss_name: result.losses},
                         f"Fine-tuning {restorer.architecture} on {len(degraded_faces)} faces", "step",
                         "training loss", log_y=True)
        return io.NodeOutput(result.restorer, boundary.channels_last(plot[None]), json.dumps(result.losses), saved_as)


def folder_pairs(pairs_folder: str):
    """The pairs of `pairs_folder` (inside ComfyUI's input folder), read one at a time."""
    if not pairs_folder.strip():
        return
    folder = image_folders.input_folder(pairs_folder, "pairs_folder")
    for degraded_path, target_path in image_folders.paired_images(folder, "degraded", "targets", "pairs_folder"):
        yield image_folders.read_rgb(degraded_path), image_folders.read_rgb(target_path)
