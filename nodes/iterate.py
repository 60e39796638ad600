"""SSDiff Iterate: the selective stage run k times, each round's restoration the next round's
coarse restoration (IDM's extrinsic loop, ssdiff_core/iteration.py)."""
from __future__ import annotations

import json

import torch
from comfy_api.latest import io

from ..comfy_adapter import device, managed, sampling
from ..priors.identity import identity_embeddings, reference_identity
from ..priors.parsing import FaceParser, parse_faces
from ..priors.plots import line_plot
from ..ssdiff_core.iteration import iterate
from . import boundary, stage_guidance, stage_inputs
from .input_checks import checked_inputs
from .types import FaceParserType


class SSDiffIterate(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="SSDiffIterate",
            display_name="SSDiff Iterate",
            category="SSDiff/archive",
            description=("Runs SSDiff Sampler up to `rounds` times, each round's restoration the next round's "
                         "coarse restoration (IDM's extrinsic loop, ICCV 2023); stops early when a round changes "
                         "the faces by less than `min_change`. Returns the last round, every round, and a plot "
                         "of the change per round and of how far the face regions (with a parser) and the "
                         "identity (with a face recognition network) drift."),
            inputs=[io.Model.Input("model", tooltip="the face DDPM (SSDiff Face Diffusion Loader), or a latent MODEL "
                                                   "with its vae"),
                    *stage_inputs.selective_inputs(), *stage_inputs.sampling_inputs(),
                    io.Int.Input("rounds", default=3, min=1, max=50,
                                 tooltip="the most rounds of SSDiff Sampler; each round's restoration is the next "
                                         "round's coarse restoration"),
                    io.Float.Input("min_change", default=0.0, min=0.0, max=1.0, step=0.001,
                                   tooltip="stop once a round changes the faces by less than this mean absolute "
                                           "difference (0..1 pixel units); 0: always run every round"),
                    FaceParserType.Input("parser", optional=True,
                                         tooltip="to measure the drift of the face regions between rounds"),
                    *stage_inputs.identity_inputs()],
            outputs=[io.Image.Output(display_name="restored"), io.Image.Output(display_name="every_round"),
                     io.Image.Output(display_name="change_plot"), io.String.Output(display_name="changes")],
        )

    @classmethod
    def validate_inputs(cls, s_start: float | None = None, s_end: float | None = None) -> bool | str:
        return stage_inputs.validate_repeat_window(s_start, s_end)

    @classmethod
    @checked_inputs
    def execute(cls, model, image: torch.Tensor, coarse_restoration: torch.Tensor, pseudo_reference: torch.Tensor,
                seed: int, steps: int, base_sampler: str, latent_guidance: str, cfg: float, reference_compat: bool,
                rounds: int, min_change: float, scratch_mask: torch.Tensor | None = None,
                parsing: torch.Tensor | None = None, colour_reference: torch.Tensor | None = None,
                colour_transfer=None, colour_region: torch.Tensor | None = None, parser: FaceParser | None = None,
                face_recognition: torch.nn.Module | None = None, reference_faces: torch.Tensor | None = None,
                vae=None, positive=None, negative=None, **settings) -> io.NodeOutput:
        """`settings`: stage 2's declared settings (SelectiveGuidance) and its identity term's, the
        same each round. With face_recognition, each round's identity drift is measured (and its
        angle to the reference faces, with them)."""
        conditioning = sampling.Conditioning(positive, negative, cfg)
        terms = stage_guidance.identity_terms(image, settings, reference_faces, face_recognition)  # built once, for every round

        def restore(coarse: torch.Tensor) -> torch.Tensor:
            def guidance_at(multiple: int):
                return stage_guidance.selective_guidance(
                    image, coarse, pseudo_reference, settings, reference_compat, scratch_mask, parsing,
                    colour_reference, colour_transfer, colour_region, terms, multiple)

            return stage_guidance.sample_stage(model, guidance_at, image, seed, steps, base_sampler, conditioning,
                                               vae, latent_guidance)

        def regions(images: torch.Tensor) -> torch.Tensor:
            managed.load(parser.network)  # (sampling may have offloaded it)
            return parse_faces(parser, boundary.image_to_rgb(images), device.check_interrupt)

        coarse = boundary.channels_last(boundary.match_size(boundary.image_to_rgb(coarse_restoration),
                                                            tuple(image.shape[1:3]), "coarse_restoration"))
        def embeddings(images: torch.Tensor) -> torch.Tensor:
            managed.load(face_recognition)  # (sampling may have offloaded it)
            return identity_embeddings(face_recognition, boundary.image_to_rgb(images))

        reference = None
        if face_recognition is not None and reference_faces is not None:
            reference = reference_identity(face_recognition, boundary.image_to_rgb(reference_faces))
        result = iterate(restore, coarse, rounds, min_change, regions if parser is not None else None,
                         embeddings if face_recognition is not None else None, reference)
        series = {"mean change": result.changes}
        if result.region_drifts:
            series["region drift"] = result.region_drifts
        angles = {"identity, round to round": result.identity_angles,
                  "identity, from the coarse restoration": result.identity_angles_from_start}
        if result.identity_angles_to_references:
            angles["identity, to the reference faces"] = result.identity_angles_to_references
        plot = line_plot(series, f"SSDiff Iterate: {len(result.restorations)} round(s)", "round",
                         "share of the image (0..1)", right=angles if result.identity_angles else None,
                         right_label="ArcFace angle (degrees)")
        report = {"changes": result.changes, "region_drifts": result.region_drifts,
                  "identity_angles": result.identity_angles,
                  "identity_angles_from_start": result.identity_angles_from_start,
                  "identity_angles_to_references": result.identity_angles_to_references}
        return io.NodeOutput(result.restorations[-1], torch.cat(result.restorations),
                             boundary.channels_last(plot[None]), json.dumps(report))
