"""CodeFormer's inference pass (Zhou et al., NeurIPS 2022) on spandrel's network, with the
choice spandrel's forward fixes: the released `CodeFormer.forward(x, w, adain=False)` leaves the
code features as the codebook gives them, spandrel always re-normalises them to the degraded
input's feature statistics (AdaIN), which carries its tone (sepia, fading) into the output.
SSDiff's `inference_final.py` calls `restorer(y, w=0.5)`, so adain is off."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

CODE_PIXELS = 32
"""The side of the face square one code stands for: the encoder halves the size five times."""
ADAIN_EPS = 1e-5


def _mean_std(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    flat = features.flatten(2)
    return flat.mean(dim=2)[..., None, None], (flat.var(dim=2) + ADAIN_EPS).sqrt()[..., None, None]


def adaptive_instance_norm(content: torch.Tensor, style: torch.Tensor) -> torch.Tensor:
    """AdaIN (Huang & Belongie, 2017): content's features with style's per-channel mean and std."""
    content_mean, content_std = _mean_std(content)
    style_mean, style_std = _mean_std(style)
    return (content - content_mean) / content_std * style_std + style_mean


def encode(network: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The encoder's output (B x 256 x 16 x 16 at 512 px, the features the transformer reads) and
    its features after the blocks the fusion blocks read, under their names ("32" ... "256": their
    sizes at 512 px, the sizes by which the released code finds them)."""
    fused_after = {network.fuse_encoder_block[name]: name for name in network.connect_list}
    encoder_features = {}
    h = x
    for index, block in enumerate(network.encoder.blocks):
        h = block(h)
        if index in fused_after:
            encoder_features[fused_after[index]] = h
    return h, encoder_features


def code_logits(network: torch.nn.Module, low_quality: torch.Tensor) -> torch.Tensor:
    """The transformer's prediction of a codebook entry per position: B x 256 x codebook size."""
    positions = network.position_emb.unsqueeze(1).repeat(1, low_quality.shape[0], 1)
    query = network.feat_emb(low_quality.flatten(2).permute(2, 0, 1))
    for layer in network.ft_layers:
        query = layer(query, query_pos=positions)
    return network.idx_pred_layer(query).permute(1, 0, 2)


def nearest_codes(network: torch.nn.Module, features: torch.Tensor) -> torch.Tensor:
    """The codebook entry nearest each position of encoder features (B x 256 x 16 x 16): B x 256."""
    flat = features.permute(0, 2, 3, 1).reshape(-1, features.shape[1])
    codebook = network.quantize.embedding.weight
    distances = flat.pow(2).sum(1, keepdim=True) + codebook.pow(2).sum(1) - 2 * flat @ codebook.T
    return distances.argmin(dim=1).view(features.shape[0], -1)


def face_size(network: torch.nn.Module) -> int:
    """The side of the faces the network takes: its transformer reads a square grid of codes
    (16 x 16, 512 px, in the published checkpoint)."""
    return CODE_PIXELS * math.isqrt(network.position_emb.shape[0])


def code_features(network: torch.nn.Module, codes: torch.Tensor) -> torch.Tensor:
    """Codebook entries of B x N codes as a B x 256 x sqrt(N) x sqrt(N) feature map (16 x 16 at 512 px)."""
    entries = F.embedding(codes, network.quantize.embedding.weight)
    side = math.isqrt(codes.shape[1])
    return entries.view(codes.shape[0], side, side, entries.shape[-1]).permute(0, 3, 1, 2)


def codeformer_forward(network: torch.nn.Module, x: torch.Tensor, fidelity: float = 0.5,
                       adain: bool = False) -> torch.Tensor:
    """B x 3 x S x S in [-1, 1] (S = `face_size`, 512) -> the restored faces (no logits).

    The encoder's features are kept at the sizes the fusion blocks take; the transformer
    predicts a codebook entry per position of the 16 x 16 grid (at 512 px); the generator decodes the
    entries, fused with the encoder's features at weight `fidelity` (w: 0 quality, 1 fidelity)
    after the blocks CodeFormer names, and not at all when w is 0."""
    low_quality, encoder_features = encode(network, x)
    logits = code_logits(network, low_quality)
    _, codes = torch.topk(F.softmax(logits, dim=2), 1, dim=2)
    h = network.quantize.get_codebook_feat(codes, shape=[x.shape[0], *low_quality.shape[-2:], low_quality.shape[1]])
    if adain:
        h = adaptive_instance_norm(h, low_quality)

    fuse_after = {network.fuse_generator_block[name]: name for name in network.connect_list}
    for index, block in enumerate(network.generator.blocks):
        h = block(h)
        if index in fuse_after and fidelity > 0:
            name = fuse_after[index]
            h = network.fuse_convs_dict[name](encoder_features[name], h, fidelity)
    return h
