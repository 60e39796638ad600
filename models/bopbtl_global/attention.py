"""The attention of BOPBTL's scratch mappings, as functions of feature maps: the masked non-local
attention of `NonLocalBlock2D_with_mask_Res` (scratch mode) and the hard patch matching of
`Patch_Attention_4.inference_forward` (scratch mode with `--HR`).

Line numbers cite microsoft/Bringing-Old-Photos-Back-to-Life @ 33875ec, `Global/models/networks.py`.

The released non-local block forms an N x N matrix over the N = h * w feature positions (four of them
alive at once: logits, softmax, the repeated key mask, the masked product), so its memory grows with
the square of the pixels (124 GiB per matrix for a 1984 x 1472 photo). Every step up to the attended
values is row-wise (softmax over the keys of one query, the key mask, the L1 renormalisation of that
row), so `masked_attention` computes rows [i, i + q) against all N keys with the same operations in the
same order: the result is the released one up to the order of floating-point sums inside the matrix
products, and its working memory is two q x N buffers. `dense_masked_attention` keeps the released
formulation, for the tests and the benchmark.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

DEFAULT_CHUNK_BYTES = 256 * 2 ** 20
"""Working memory of one chunk of queries (its logits and probabilities), when no chunk is given."""
MIN_CHUNK = 16
"""Fewest query rows per chunk whatever the budget: fewer would re-read all keys for too little work."""
L1_EPS = 1e-12
"""`F.normalize`'s default eps, with which the released block renormalises each row (networks.py:507)."""
QUERY_THRESHOLD = 0.6
"""A patch whose hole fraction is above this is re-filled from its best match (networks.py:738)."""


def attention_chunk(queries: int, keys: int, batch: int = 1, element_size: int = 4,
                    chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """Query rows per chunk so that two batch x rows x keys buffers fit in `chunk_bytes`; at least
    MIN_CHUNK (or every row, when there are fewer), at most every row."""
    per_row = 2 * max(batch, 1) * max(keys, 1) * element_size
    return max(1, min(queries, max(MIN_CHUNK, chunk_bytes // per_row)))


def _rows(queries: int, keys: int, batch: int, chunk: int | None, chunk_bytes: int) -> int:
    if chunk is None:
        return attention_chunk(queries, keys, batch, 4, chunk_bytes)
    if chunk < 1:
        raise ValueError(f"chunk must be a positive number of query rows, got {chunk}")
    return min(chunk, max(queries, 1))


def feature_validity(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The non-local block's key/keep map at feature size: B x 1 x h x w, 1 where a feature position
    is intact, for an image-size mask (1 = damaged) (networks.py:483-489).

    A position is a hole when the bilinear resize (align_corners False) of the mask is above 0 there,
    or when the nearest resize of the mask is 1 there; this is not a max-pool: at scale 4 the
    bilinear samples pixels {4i+1, 4i+2}^2 and the nearest one (4i, 4j)."""
    holes = F.interpolate(mask, size, mode="bilinear", align_corners=False)
    holes = holes.masked_fill(holes > 0, 1.0)
    return (1 - holes) * F.interpolate(1 - mask, size, mode="nearest")


def feature_holes(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The patch attention's hole map at feature size: B x 1 x h x w, 1 where the bilinear resize of
    the image-size mask (1 = damaged) is above 0 (networks.py:729-730)."""
    holes = F.interpolate(mask, size, mode="bilinear", align_corners=False)
    return holes.masked_fill(holes > 0, 1.0)


def _attended_rows(queries: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                   valid: torch.Tensor, temperature: float, renormalise: bool) -> torch.Tensor:
    """Rows of the released attention (networks.py:477-511): softmax over every key of
    queries @ keys / temperature, times the key validity, each row divided by its L1 norm (at least
    L1_EPS), times the values. queries B x q x C, keys B x C x N, values B x N x C, valid B x 1 x N.

    Half-precision logits are upcast for the softmax and the renormalisation (their 1e-12 would
    underflow to 0); float32 is computed as released."""
    logits = torch.matmul(queries, keys)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    if temperature != 1.0:
        logits /= temperature
    weights = F.softmax(logits, dim=2)
    del logits
    weights.mul_(valid.to(weights.dtype))
    if renormalise:
        weights.div_(weights.norm(1, dim=2, keepdim=True).clamp_min(L1_EPS))
    return torch.matmul(weights.to(values.dtype), values)


def masked_attention(theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor, valid: torch.Tensor, *,
                     temperature: float = 1.0, renormalise: bool = True, chunk: int | None = None,
                     chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> torch.Tensor:
    """The masked non-local attention of networks.py:463-515, `chunk` query rows at a time
    (automatic from `chunk_bytes` when None): theta, phi, g are the B x C x h x w outputs of the
    1 x 1 convolutions, `valid` the B x 1 x h x w map of `feature_validity`. Returns y, B x C x h x w.
    Peak working memory: about two B x chunk x N buffers, beside the B x C x N inputs and result."""
    batch, channels, height, width = theta.shape
    positions = height * width
    keys = phi.reshape(batch, channels, positions)
    values = g.reshape(batch, channels, positions).transpose(1, 2)
    queries = theta.reshape(batch, channels, positions).transpose(1, 2)
    key_valid = valid.reshape(batch, 1, positions)
    rows = _rows(positions, positions, batch, chunk, chunk_bytes)
    y = torch.empty(batch, channels, positions, dtype=g.dtype, device=g.device)
    for start in range(0, positions, rows):
        stop = min(start + rows, positions)
        attended = _attended_rows(queries[:, start:stop], keys, values, key_valid, temperature, renormalise)
        y[:, :, start:stop] = attended.transpose(1, 2)
    return y.reshape(batch, channels, height, width)


def dense_masked_attention(theta: torch.Tensor, phi: torch.Tensor, g: torch.Tensor, valid: torch.Tensor, *,
                           temperature: float = 1.0, renormalise: bool = True) -> torch.Tensor:
    """The released formulation (networks.py:463-515), N x N matrices and the repeated key mask
    included, for the tests and the benchmark: the same y as `masked_attention`, in O(N^2) memory."""
    batch, channels, height, width = theta.shape
    positions = height * width
    g_x = g.reshape(batch, channels, -1).permute(0, 2, 1)
    theta_x = theta.reshape(batch, channels, -1).permute(0, 2, 1)
    phi_x = phi.reshape(batch, channels, -1)
    f = torch.matmul(theta_x, phi_x)
    f /= temperature
    f_div_c = F.softmax(f, dim=2)
    mask_expand = valid.reshape(batch, 1, -1).repeat(1, positions, 1)
    f_div_c = mask_expand * f_div_c
    if renormalise:
        f_div_c = F.normalize(f_div_c, p=1, dim=2)
    y = torch.matmul(f_div_c, g_x)
    return y.permute(0, 2, 1).contiguous().reshape(batch, channels, height, width)


def _best_keys(queries: torch.Tensor, keys: torch.Tensor, rows: int) -> torch.Tensor:
    """Index of each query's best key: the argmax of the softmax of the cosine similarities, as
    networks.py:762-766 takes it (the softmax can merge near-ties that the raw cosines separate)."""
    best = []
    for start in range(0, queries.shape[1], rows):
        correlation = torch.bmm(queries[:, start:start + rows], keys)
        best.append(torch.max(F.softmax(correlation, dim=2), dim=2).indices)
    return torch.cat(best, dim=1)


def patch_match(x: torch.Tensor, holes: torch.Tensor, patch: int, *, chunk: int | None = None,
                chunk_bytes: int = DEFAULT_CHUNK_BYTES, dense: bool = False) -> torch.Tensor:
    """`Patch_Attention_4.inference_forward`'s composition (networks.py:737-770), image by image:
    x (B x C x h x w) cut into non-overlapping patch x patch patches; a patch whose mean hole value
    (`holes`, B x 1 x h x w) is above 0.6 is a query, every other a key; each query patch is replaced
    by the key patch of highest cosine similarity; then folded back. Without any query x is returned
    as it is; otherwise, as released, a bottom/right strip that no whole patch covers comes back as 0.

    Queries are matched `chunk` rows at a time (automatic from `chunk_bytes` when None; all at once
    with `dense`, as released). Raises ValueError when every patch is a query (no key to copy from;
    the released code fails on the empty maximum there)."""
    composed = []
    for index in range(x.shape[0]):
        image = x[index:index + 1]
        hole_fraction = F.unfold(holes[index:index + 1], kernel_size=patch, stride=patch).mean(dim=1)[0]
        is_query = hole_fraction > QUERY_THRESHOLD
        query_index = torch.nonzero(is_query, as_tuple=True)[0]
        if len(query_index) == 0:
            composed.append(image)
            continue
        key_index = torch.nonzero(~is_query, as_tuple=True)[0]
        if len(key_index) == 0:
            raise ValueError(
                f"every {patch} x {patch} feature patch ({patch * 4} x {patch * 4} image pixels) is more than "
                f"{QUERY_THRESHOLD:.0%} damaged: no intact patch is left to fill them from (the released code "
                "skips such an image); use a smaller mask or the non-HR scratch mode")
        patches = F.unfold(image, kernel_size=patch, stride=patch)
        key_patches = torch.index_select(patches, 2, key_index)
        queries = F.normalize(torch.index_select(patches, 2, query_index).transpose(1, 2), dim=2)
        keys = F.normalize(key_patches, dim=1)
        rows = len(query_index) if dense else _rows(len(query_index), len(key_index), 1, chunk, chunk_bytes)
        best = _best_keys(queries, keys, rows)
        patches[:, :, query_index] = torch.index_select(key_patches, 2, best[0])
        composed.append(F.fold(patches, output_size=image.shape[2:], kernel_size=patch, stride=patch))
    return torch.cat(composed, dim=0)
