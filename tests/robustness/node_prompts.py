"""A working API prompt around each of the pack's nodes that reads an IMAGE, MASK or parsing, with
every input wired (node "n", its first output shown by PreviewAny), for tests that spoil one
input of one node at a time, and the list of those inputs."""
from __future__ import annotations

import copy

from robustness_support import DDPM, DETECTOR, SCRATCH, random_rgb, write_image
from stage_settings import ONE_STOP_SETTINGS, PSEUDO_REFERENCE_SETTINGS, SELECTIVE_SETTINGS

UNDER_TEST = "n"
PARSER = "parsing_parsenet.pth"
RESTORER = "codeformer.pth"
RECOGNITION = "recognition_arcface_ir_se50.pth"


def sources(photo_name: str) -> dict:
    """The nodes that feed the node under test; ComfyUI runs only those it needs."""
    return {
        "ddpm": {"class_type": "SSDiffFaceDiffusionLoader", "inputs": {"ckpt_name": DDPM, "weight_dtype": "fp32"}},
        "photo": {"class_type": "LoadImage", "inputs": {"image": photo_name}},
        "mask": {"class_type": "SolidMask", "inputs": {"value": 0.0, "width": 32, "height": 32}},
        "black": {"class_type": "EmptyImage", "inputs": {"width": 32, "height": 32, "batch_size": 1, "color": 0}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "scratch_detector": {"class_type": "SSDiffScratchDetectorLoader", "inputs": {"model_name": SCRATCH}},
        "face_detector": {"class_type": "SSDiffFaceDetectorLoader", "inputs": {"model_name": DETECTOR}},
        "parser": {"class_type": "SSDiffFaceParserLoader", "inputs": {"model_name": PARSER}},
        "restorer": {"class_type": "SSDiffFaceRestorerLoader", "inputs": {"model_name": RESTORER}},
        "face_recognition": {"class_type": "SSDiffFaceRecognitionLoader", "inputs": {"model_name": RECOGNITION}},
        "global_restoration": {"class_type": "SSDiffGlobalRestorationLoader",
                               "inputs": {"encoder": "restoration/VAE_A_quality/latest_net_G.pth",
                                          "mapping": "restoration/mapping_scratch/latest_net_mapping_net.pth",
                                          "decoder": "restoration/VAE_B_scratch/latest_net_G.pth"}},
        "colouriser": {"class_type": "SSDiffColouriserLoader",
                       "inputs": {"model_name": "ddcolor_modelscope.pth", "input_size": 64}},
        "parse": {"class_type": "SSDiffLabelMapToParsing", "inputs": {"label_map": ["black", 0]}},
        "crop": {"class_type": "SSDiffFaceCrop",
                 "inputs": {"detector": ["face_detector", 0], "image": ["photo", 0], "crop_size": 64,
                            "selection": "largest", "index": 0, "min_eye_distance": 10.0, "confidence": 0.97}},
    }


_STAGE_1 = {"image": ["photo", 0], "scratch_mask": ["mask", 0], **PSEUDO_REFERENCE_SETTINGS}
_STAGE_2 = {"image": ["photo", 0], "coarse_restoration": ["photo", 0], "pseudo_reference": ["photo", 0],
            "scratch_mask": ["mask", 0], "parsing": ["parse", 0], "colour_reference": ["photo", 0],
            "colour_region": ["mask", 0], **SELECTIVE_SETTINGS}
_ONE_STOP = {"model": ["ddpm", 0], **ONE_STOP_SETTINGS, "seed": 1, "steps": 2}

NODE_INPUTS: dict[str, dict] = {
    "SSDiffPseudoReference": {**_STAGE_1, **_ONE_STOP},
    "SSDiffSampler": {**_STAGE_2, **_ONE_STOP},
    "SSDiffPseudoReferenceSampler": _STAGE_1,
    "SSDiffSelectiveSampler": _STAGE_2,
    "SSDiffLabelMapToParsing": {"label_map": ["black", 0]},
    "SSDiffFaceParse": {"parser": ["parser", 0], "image": ["photo", 0], "regions": "face", "reference_compat": False},
    "SSDiffFaceCrop": {**sources("")["crop"]["inputs"], "mask": ["mask", 0]},
    "SSDiffFacePaste": {"image": ["photo", 0], "faces": ["crop", 0], "face_info": ["crop", 2]},
    "SSDiffScratchMask": {"detector": ["scratch_detector", 0], "image": ["photo", 0], "threshold": 0.4,
                          "dilation": 1, "resize_mode": "full_size", "add_mask": ["mask", 0],
                          "erase_mask": ["mask", 0]},
    "SSDiffCoarseRestore": {"restorer": ["restorer", 0], "image": ["photo", 0], "fidelity": 0.5},
    "SSDiffColourTransfer": {"content": ["photo", 0], "style": ["photo", 0], "region": ["mask", 0]},
    "SSDiffPseudoTargets": {"model": ["ddpm", 0], "coarse_restoration": ["photo", 0], "constraint_end": 0.36,
                            "filter_factor": 8, "seed": 1, "steps": 4, "start": 0.6, "reference_compat": False},
    "SSDiffPseudoTargetSampler": {"coarse_restoration": ["photo", 0], "constraint_end": 0.36, "filter_factor": 8},
    "SSDiffFineTuneRestorer": {"restorer": ["restorer", 0], "degraded": ["photo", 0], "targets": ["photo", 0],
                               "steps": 1, "learning_rate": 1e-4, "batch_size": 1, "seed": 0, "ema_decay": 0.0,
                               "train": "transformer_only", "save_name": ""},
    "SSDiffPerceptualLossLoader": {"model_name": "vgg16-397923af.pth", "weight": 0.1},
    "SSDiffIterate": {**_STAGE_2, **_ONE_STOP, "rounds": 2, "min_change": 0.0, "parser": ["parser", 0],
                      "face_recognition": ["face_recognition", 0]},
    "SSDiffIdentityAngle": {"face_recognition": ["face_recognition", 0], "faces": ["photo", 0],
                            "reference_faces": ["photo", 0]},
    "SSDiffFillDamage": {"image": ["photo", 0], "mask": ["mask", 0], "method": "telea", "dilation": 2, "radius": 5.0},
    "SSDiffGlobalRestoration": {"global_restoration": ["global_restoration", 0], "image": ["photo", 0],
                                "mask": ["mask", 0], "postprocess": "released", "mask_dilation": -1},
    "SSDiffColourise": {"colouriser": ["colouriser", 0], "image": ["photo", 0]},
    "SSDiffFaceRecrop": {"image": ["photo", 0], "face_info": ["crop", 2]},
}
"""Each node's inputs, all connected: images from a 32 px photo, masks from a 32 px SolidMask."""

IMAGE_SOURCES = ("photo", "black", "crop")
MASK_SOURCES = ("mask",)


def tensor_inputs(kind: str) -> list[tuple[str, str]]:
    """(node, input) for every IMAGE ('image'), MASK ('mask') or parsing ('parsing') input."""
    wanted = {"image": IMAGE_SOURCES, "mask": MASK_SOURCES, "parsing": ("parse",)}[kind]
    return [(node, name) for node, inputs in NODE_INPUTS.items() for name, value in inputs.items()
            if isinstance(value, list) and value[0] in wanted and not (name == "face_info")]


def node_prompt(server, node: str, **replaced) -> dict:
    """The prompt around `node`, its inputs in `replaced` set to other values or links."""
    prompt = sources(write_image(server, random_rgb(32, 32, seed=7), name="node_prompt_photo.png"))
    prompt[UNDER_TEST] = {"class_type": node, "inputs": {**copy.deepcopy(NODE_INPUTS[node]), **replaced}}
    prompt["show"] = {"class_type": "PreviewAny", "inputs": {"source": [UNDER_TEST, 0]}}
    return prompt
