"""Building BOPBTL's global-restoration networks from the released state dicts, strictly.

The released loader (`Global/models/base_model.py:70-119`) keeps the random initialisation when a
file is missing and, when a strict load fails, loads whichever keys match: a wrong or damaged file
restores photos with random layers and no error. Here every key of the network must be in the
file with its shape, and the file may hold nothing else, except the VAE half the pipeline never
runs (`decoder.*` in VAE_A, `encoder.*` in VAE_B: the released `latest_net_G.pth` files hold
both), which is dropped by name. Anything else raises ValueError naming the keys.
"""
from __future__ import annotations

from collections.abc import Mapping as MappingType
from dataclasses import dataclass

import torch
from torch import nn

from .networks import (Mapping, Mode, PatchAttentionMapping, QualityMapping, ScratchMapping, VAEDecoder,
                       VAEEncoder)

MAPPING_MARKERS: dict[str, type[Mapping]] = {
    "NL_scale_1.F_Combine.weight": PatchAttentionMapping,
    "NL.theta.weight": ScratchMapping,
    "model.0.weight": QualityMapping,
}
"""A key only that mapping's file holds, for each mapping."""
ENCODER_MARKERS = ("encoder.1.weight",)
"""A key of VAE_A's encoder, which every latest_net_G.pth holds (VAE_B's files too)."""
DECODER_MARKERS = ("decoder.11.weight",)
"""A key of VAE_B's decoder, which every latest_net_G.pth holds (VAE_A's files too)."""
MARKER_KEYS = (*ENCODER_MARKERS, *DECODER_MARKERS, *MAPPING_MARKERS)
"""Keys of which every file of the global restoration holds one."""
_SHOWN = 8


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_SHOWN])
    return f"{shown} and {len(keys) - _SHOWN} more" if len(keys) > _SHOWN else shown


def load_strictly(network: nn.Module, state_dict: MappingType[str, torch.Tensor], what: str,
                  ignored_prefix: str | None = None) -> nn.Module:
    """Loads `state_dict` into `network` (in eval mode, returned) after dropping the keys that start
    with `ignored_prefix`; raises ValueError naming every missing key, and the unexpected keys and
    mismatched shapes, before anything is loaded. A network built on the meta device takes the
    state dict's tensors themselves (their device and dtype), with no initialisation spent."""
    given = {key: value for key, value in state_dict.items()
             if ignored_prefix is None or not key.startswith(ignored_prefix)}
    expected = network.state_dict()
    problems = []
    missing = [key for key in expected if key not in given]
    if missing:
        problems.append(f"missing {len(missing)} key(s): {', '.join(missing)}")
    unexpected = sorted(key for key in given if key not in expected)
    if unexpected:
        hint = ""
        if any(key.endswith(("weight_orig", "weight_u", "weight_v")) for key in unexpected):
            hint = (" (spectral-norm parameters: the released generators and mappings have no spectral norm, "
                    "use_SN only reaches the discriminator, networks.py:576-595)")
        problems.append(f"unexpected {len(unexpected)} key(s){hint}: {_listed(unexpected)}")
    shapes = [f"{key} {tuple(given[key].shape)} (expected {tuple(value.shape)})"
              for key, value in expected.items() if key in given and given[key].shape != value.shape]
    if shapes:
        problems.append(f"{len(shapes)} shape(s) differ: {_listed(shapes)}")
    if problems:
        raise ValueError(f"not a BOPBTL {what} state dict: {'; '.join(problems)}")
    on_meta = any(tensor.is_meta for tensor in expected.values())
    network.load_state_dict(given, strict=True, assign=on_meta)
    return network.eval()


def build_encoder(state_dict: MappingType[str, torch.Tensor]) -> VAEEncoder:
    """VAE_A's encoder from VAE_A_quality's `latest_net_G.pth` (its `decoder.*` keys are dropped)."""
    with torch.device("meta"):
        network = VAEEncoder()
    return load_strictly(network, state_dict, "VAE encoder (VAE_A_quality/latest_net_G.pth)", "decoder.")


def build_decoder(state_dict: MappingType[str, torch.Tensor]) -> VAEDecoder:
    """VAE_B's decoder from VAE_B_quality's or VAE_B_scratch's `latest_net_G.pth` (its `encoder.*`
    keys are dropped)."""
    with torch.device("meta"):
        network = VAEDecoder()
    return load_strictly(network, state_dict, "VAE decoder (VAE_B_*/latest_net_G.pth)", "encoder.")


def mapping_class(state_dict: MappingType[str, torch.Tensor]) -> type[Mapping]:
    """Which mapping a `latest_net_mapping_net.pth` state dict is, by its marker key."""
    for marker, network in MAPPING_MARKERS.items():
        if marker in state_dict:
            return network
    sample = ", ".join(sorted(state_dict)[:5]) or "nothing"
    raise ValueError("not a BOPBTL mapping state dict: it holds none of "
                     f"{', '.join(MAPPING_MARKERS)} ({len(state_dict)} entries, e.g. {sample})")


def build_mapping(state_dict: MappingType[str, torch.Tensor]) -> Mapping:
    """The quality, scratch or HR mapping a `latest_net_mapping_net.pth` state dict holds."""
    network = mapping_class(state_dict)
    with torch.device("meta"):
        empty = network()
    return load_strictly(empty, state_dict, f"{network.mode} mapping (latest_net_mapping_net.pth)")


@dataclass(frozen=True)
class GlobalRestorationNetworks:
    """The three networks of one mode: VAE_A's encoder, a mapping, VAE_B's decoder (VAE_B_quality's
    for the quality mapping, VAE_B_scratch's for both scratch mappings: the files are the same
    architecture and cannot be told apart by their keys)."""
    encoder: VAEEncoder
    mapping: Mapping
    decoder: VAEDecoder

    @property
    def mode(self) -> Mode:
        return self.mapping.mode

    def to(self, *args, **kwargs) -> "GlobalRestorationNetworks":
        """Moves (or casts) the three networks in place, as nn.Module.to does; returns self."""
        for network in (self.encoder, self.mapping, self.decoder):
            network.to(*args, **kwargs)
        return self


def build(encoder: MappingType[str, torch.Tensor], mapping: MappingType[str, torch.Tensor],
          decoder: MappingType[str, torch.Tensor]) -> GlobalRestorationNetworks:
    """The networks of the mode that `mapping` is, from the three files' state dicts."""
    return GlobalRestorationNetworks(build_encoder(encoder), build_mapping(mapping), build_decoder(decoder))
