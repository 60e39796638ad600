"""Filling damaged pixels (scratches, dust, small tears) of whole photos at their own resolution.

The usual way shrinks the whole photo to LaMa's 256 px and pastes a blurred fill back. Here the
photo is never resized and never processed whole: only crops around the damage are filled, at
the photo's own resolution.

1. The mask (> 0.5) is grown by `dilation_px` (a disk): the *holes*, the only pixels that may
   change. Every pixel outside them comes back bit for bit as it went in.
2. Each connected region of the holes (8-connected, OpenCV) gets a context margin proportional to
   its thickness (`context` x the diameter of the widest disk inside it), bounded by
   `min_context` and `max_context` px.
3. A compact region becomes one crop, its box plus the margin; nearby crops are merged where one
   crop costs no more pixels than the two. A long region (a scratch across the photo) is cut
   along its box into tiles of `tile` px (more for a thick region: a tile holds twice its
   thickness plus the margins), and only the tiles it passes through are kept. So the pixels
   processed follow the damaged area, not the photo's.
4. Each crop is filled with every hole inside it masked (a neighbouring scratch is never taken as
   context) and writes back only the hole pixels it owns (its own regions, inside its core): each
   hole pixel is written once, whatever the order of the crops.

Methods: "telea" (OpenCV's fast-marching inpainting, per colour channel in float32) and "lama" (a
LaMa network, models/lama). LaMa takes crops padded (by reflection) to multiples of 8 px, batched
when they have the same size. A LaMa crop whose long side exceeds `max_side` (a large hole, which
is never cut into tiles) is downscaled within that crop only, filled, and its fill upscaled back
to the crop (bilinear); no other crop is resized.

The mask-level work (dilation, connected regions, a distance transform) runs once over the whole
mask in uint8/int32/float32 maps; the fills (and the network) see only the crops.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .arrays import image_array, image_tensor, mask_array, mask_tensor

Method = Literal["telea", "lama"]
METHODS: tuple[Method, ...] = ("telea", "lama")
DEFAULT_DILATION_PX = 2
DEFAULT_RADIUS = 5.0
"""Telea's neighbourhood radius (px)."""
DEFAULT_CONTEXT = 1.0
"""A region's margin, in units of its thickness."""
MIN_CONTEXT = 8
MAX_CONTEXT = 64
TILE = 128
"""Side (px) of the tiles a long region is cut into, margins included."""
LAMA_MAX_SIDE = 1024
"""Longest crop side LaMa sees at full resolution (a larger crop is downscaled within itself)."""
LAMA_MULTIPLE = 8
LAMA_BATCH_PIXELS = 256 * 256
"""Pixels per LaMa batch of same-sized crops."""
MASK_MAP_BYTES_PER_PIXEL = 14
"""The whole-mask maps of one photo: the mask read as float32 and uint8, the holes (uint8), the
connected regions' labels (int32), the distance transform (float32)."""
LAMA_WORKING_BYTES = 3 << 29
"""LaMa's working memory on its largest crops (LAMA_MAX_SIDE, LAMA_BATCH_PIXELS): 1.5 GiB, above
the 1,040 MiB that bench/bench_inpainting.py measured beyond Telea's on a 24 MP photo."""


@dataclass(frozen=True)
class Crop:
    """One window of a photo: `box` (top, left, bottom, right, exclusive) is what the fill reads;
    what it writes are its `parts`' hole pixels: those of the regions `labels` (in the labels map)
    inside `core` (a box), for each (core, labels) part."""
    box: tuple[int, int, int, int]
    parts: tuple[tuple[tuple[int, int, int, int], tuple[int, ...]], ...]

    @property
    def height(self) -> int:
        return self.box[2] - self.box[0]

    @property
    def width(self) -> int:
        return self.box[3] - self.box[1]

    @property
    def area(self) -> int:
        return self.height * self.width


def holes_of(mask: np.ndarray, dilation_px: int = DEFAULT_DILATION_PX) -> np.ndarray:
    """An H x W mask (damaged > 0.5) grown by a disk of `dilation_px`: uint8, 1 = hole."""
    if dilation_px < 0:
        raise ValueError(f"dilation_px must be >= 0, got {dilation_px}")
    mask = np.asarray(mask)
    holes = (mask if mask.dtype == bool else mask > 0.5).astype(np.uint8)
    if dilation_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * dilation_px + 1, 2 * dilation_px + 1))
        holes = cv2.dilate(holes, kernel)
    return holes


def fill_region(masks: torch.Tensor, dilation_px: int = DEFAULT_DILATION_PX) -> torch.Tensor:
    """The pixels `fill` may change, B x H x W boolean (CPU), for masks B x 1 x H x W, B x H x W
    or H x W."""
    masks = _as_batch_of_masks(masks)
    return mask_tensor(np.stack([holes_of(mask_array(mask) > 0.5, dilation_px) > 0 for mask in masks]))


class _Window:
    __slots__ = ("box", "core", "labels", "limit")

    def __init__(self, box: list[int], core: list[int], labels: list[int], limit: int):
        self.box, self.core, self.labels, self.limit = box, core, labels, limit

    @property
    def area(self) -> int:
        return (self.box[2] - self.box[0]) * (self.box[3] - self.box[1])


def _union(a: list[int], b: list[int]) -> list[int]:
    return [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]


def _merge_nearby(windows: list[_Window]) -> list[_Window]:
    """Merges overlapping windows while one window costs no more pixels than the two and stays
    within the larger of their side limits; passes until nothing merges."""
    merged = True
    while merged and len(windows) > 1:
        merged = False
        windows.sort(key=lambda window: window.box[0])
        alive = [True] * len(windows)
        for i, first in enumerate(windows):
            if not alive[i]:
                continue
            j = i + 1
            while j < len(windows) and windows[j].box[0] < first.box[2]:
                second = windows[j]
                if alive[j] and second.box[1] < first.box[3] and first.box[1] < second.box[3]:
                    box = _union(first.box, second.box)
                    limit = max(first.limit, second.limit)
                    area = (box[2] - box[0]) * (box[3] - box[1])
                    if area <= first.area + second.area and max(box[2] - box[0], box[3] - box[1]) <= limit:
                        first.box, first.core, first.limit = box, _union(first.core, second.core), limit
                        first.labels = first.labels + second.labels
                        alive[j] = False
                        merged = True
                j += 1
        windows = [window for window, keep in zip(windows, alive) if keep]
    return windows


def plan_crops(holes: np.ndarray, context: float = DEFAULT_CONTEXT, min_context: int = MIN_CONTEXT,
               max_context: int = MAX_CONTEXT, tile: int = TILE) -> tuple[list[Crop], np.ndarray]:
    """The crops that cover an H x W uint8 holes map (see the module's description), and the
    labels map (int32, 0 = no hole) their `labels` refer to."""
    if not 0 <= min_context <= max_context:
        raise ValueError(f"need 0 <= min_context <= max_context, got {min_context} and {max_context}")
    if tile < 8 or context < 0:
        raise ValueError(f"need tile >= 8 and context >= 0, got {tile} and {context}")
    height, width = holes.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(holes, connectivity=8, ltype=cv2.CV_32S)
    if count <= 1:
        return [], labels
    # Hole pixels grouped by region: everything below follows the damaged area.
    ys, xs = np.nonzero(holes)
    region_of = labels[ys, xs]
    distance = cv2.distanceTransform(holes, cv2.DIST_L2, 3)
    depth = np.zeros(count, np.float32)
    np.maximum.at(depth, region_of, distance[ys, xs])
    del distance
    thickness = 2 * np.minimum(depth, max(height, width))  # the widest inscribed disk's diameter, px (OpenCV
    # counts the image's border as no edge: a region filling the image would be infinitely deep)
    margins = np.clip(np.round(context * thickness), min_context, max_context).astype(int)
    order = np.argsort(region_of, kind="stable")
    starts = np.concatenate([[0], np.cumsum(np.bincount(region_of, minlength=count))])
    windows: list[_Window] = []
    crops: list[Crop] = []
    for region in range(1, count):
        left, top, w, h = (int(v) for v in stats[region, :4])
        margin = int(margins[region])
        side = max(tile, 2 * margin + 2 * math.ceil(thickness[region]))
        box = [max(0, top - margin), max(0, left - margin), min(height, top + h + margin),
               min(width, left + w + margin)]
        if box[2] - box[0] <= side and box[3] - box[1] <= side:
            windows.append(_Window(box, [top, left, top + h, left + w], [region], side))
            continue
        crops += _tiles(region, ys[order[starts[region]:starts[region + 1]]],
                        xs[order[starts[region]:starts[region + 1]]], (top, left, h, w), side - 2 * margin, margin,
                        (height, width))
    singles = _absorbed(crops, _merge_nearby(windows))  # (adds parts to the tiles in `crops`)
    return crops + singles, labels


def _tiles(region: int, ys: np.ndarray, xs: np.ndarray, box: tuple[int, int, int, int], core: int, margin: int,
           size: tuple[int, int]) -> list[Crop]:
    """A long region cut along its box (top, left, height, width) into cells of at most `core`
    px (of equal sizes); each cell it passes through gives a crop: the box of its pixels there,
    plus the margin. A steep scratch thus gets narrow crops."""
    top, left, h, w = box
    rows, columns = -(-h // core), -(-w // core)
    cell_h, cell_w = -(-h // rows), -(-w // columns)
    cells = ((ys - top) // cell_h) * columns + (xs - left) // cell_w
    order = np.argsort(cells, kind="stable")
    cells, ys, xs = cells[order], ys[order], xs[order]
    firsts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
    tops, bottoms = np.minimum.reduceat(ys, firsts), np.maximum.reduceat(ys, firsts) + 1
    lefts, rights = np.minimum.reduceat(xs, firsts), np.maximum.reduceat(xs, firsts) + 1
    crops = []
    for core_box in zip(tops.tolist(), lefts.tolist(), bottoms.tolist(), rights.tolist()):
        crop_box = (max(0, core_box[0] - margin), max(0, core_box[1] - margin), min(size[0], core_box[2] + margin),
                    min(size[1], core_box[3] + margin))
        crops.append(Crop(crop_box, ((core_box, (region,)),)))
    return crops


def _absorbed(tiles: list[Crop], windows: list[_Window]) -> list[Crop]:
    """The windows as crops; a window inside a tile's box becomes a part of that tile (at no cost)."""
    boxes = np.array([tile.box for tile in tiles]).reshape(-1, 4)
    parts: dict[int, list] = {}
    crops = []
    for window in windows:
        inside = np.flatnonzero((boxes[:, 0] <= window.box[0]) & (boxes[:, 1] <= window.box[1]) &
                                (boxes[:, 2] >= window.box[2]) & (boxes[:, 3] >= window.box[3]))
        part = (tuple(window.core), tuple(window.labels))
        if inside.size:
            parts.setdefault(int(inside[0]), []).append(part)
        else:
            crops.append(Crop(tuple(window.box), (part,)))
    for index, extra in parts.items():
        tiles[index] = Crop(tiles[index].box, tiles[index].parts + tuple(extra))
    return crops


def _as_batch_of_masks(masks: torch.Tensor) -> torch.Tensor:
    if masks.ndim == 2:
        return masks[None]
    if masks.ndim == 4 and masks.shape[1] == 1:
        return masks[:, 0]
    if masks.ndim == 3:
        return masks
    raise ValueError(f"expected masks B x 1 x H x W, B x H x W or H x W, got shape {tuple(masks.shape)}")


def _owned(crop: Crop, labels: np.ndarray) -> np.ndarray:
    """The crop's own hole pixels, a boolean map over its box."""
    own = np.zeros((crop.height, crop.width), bool)
    for (top, left, bottom, right), regions in crop.parts:
        own[top - crop.box[0]:bottom - crop.box[0], left - crop.box[1]:right - crop.box[1]] |= np.isin(
            labels[top:bottom, left:right], regions)
    return own


def _write(result: torch.Tensor, channels: int, crop: Crop, own: np.ndarray, filled: torch.Tensor) -> None:
    """Writes the fill's own pixels into the (B-less) result photo; nothing else is touched."""
    top, left, bottom, right = crop.box
    destination = result[:channels, top:bottom, left:right]
    own_t = mask_tensor(own).to(result.device)
    destination[:, own_t] = filled.to(result.device, result.dtype)[:, own_t]


def _telea(photo: torch.Tensor, channels: int, crop: Crop, holes: np.ndarray, radius: float) -> torch.Tensor:
    top, left, bottom, right = crop.box
    # In 0..255: OpenCV's Telea adds a term of up to ~1.4 levels, meant for 8-bit images, which in
    # [0, 1] would swamp the fill.
    image = image_array(photo[:channels, top:bottom, left:right]) * 255
    hole = np.ascontiguousarray(holes[top:bottom, left:right])
    filled = np.stack([cv2.inpaint(np.ascontiguousarray(image[..., channel]), hole, radius, cv2.INPAINT_TELEA)
                       for channel in range(channels)], axis=-1)
    return image_tensor(filled).div_(255).clamp_(0, 1)


def _grow_to_multiple(box: tuple[int, int, int, int], multiple: int, height: int,
                      width: int) -> tuple[int, int, int, int]:
    """The box grown (centred, kept inside the photo) so that its sides are multiples, where the
    photo is large enough; more context instead of padding."""
    grown = list(box)
    for axis, size in ((0, height), (1, width)):
        start, end = grown[axis], grown[axis + 2]
        target = min(size, -(-(end - start) // multiple) * multiple)
        extra = target - (end - start)
        start = max(0, start - extra // 2)
        end = start + target
        if end > size:
            start, end = size - target, size
        grown[axis], grown[axis + 2] = start, end
    return tuple(grown)


def _pad_to_multiple(tensor: torch.Tensor, multiple: int) -> torch.Tensor:
    height, width = tensor.shape[-2:]
    bottom, right = (-height) % multiple, (-width) % multiple
    if not bottom and not right:
        return tensor
    mode = "reflect" if bottom < height and right < width else "replicate"
    return F.pad(tensor, (0, right, 0, bottom), mode=mode)


class _LamaRun:
    """LaMa over a photo's crops: crops of the same network size are batched (up to
    `batch_pixels`), on the network's device and dtype."""

    def __init__(self, network: nn.Module, max_side: int, batch_pixels: int):
        self.network = network
        parameter = next(network.parameters(), None)
        self.device = parameter.device if parameter is not None else torch.device("cpu")
        self.dtype = parameter.dtype if parameter is not None and parameter.is_floating_point() else torch.float32
        self.max_side, self.batch_pixels = max_side, batch_pixels

    def prepare(self, photo: torch.Tensor, channels: int, crop: Crop,
                holes: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
        """(image 3 x h x w, mask 1 x h x w, their size before padding) as the network takes them:
        downscaled if the crop is larger than max_side, padded to a multiple of 8."""
        top, left, bottom, right = crop.box
        image = photo[:channels, top:bottom, left:right].float()
        if channels == 1:
            image = image.expand(3, -1, -1)
        mask = mask_tensor(holes[top:bottom, left:right]).to(image.device, torch.float32)[None]
        if max(crop.height, crop.width) > self.max_side:
            scale = self.max_side / max(crop.height, crop.width)
            size = (max(LAMA_MULTIPLE, round(crop.height * scale)), max(LAMA_MULTIPLE, round(crop.width * scale)))
            image = F.interpolate(image[None], size=size, mode="area")[0]
            # Every low-resolution pixel the upscaling blends into a hole pixel is a hole as well.
            mask = F.max_pool2d((F.interpolate(mask[None], size=size, mode="area") > 0).float(), 3, 1, 1)[0]
        size = tuple(image.shape[-2:])
        image = _pad_to_multiple(image[None], LAMA_MULTIPLE)[0]
        mask = _pad_to_multiple(mask[None], LAMA_MULTIPLE)[0]
        return image, mask, size

    @torch.no_grad()
    def run(self, images: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        output = self.network(images.to(self.device, self.dtype), masks.to(self.device, self.dtype))
        return output.float().clamp_(0, 1)


def _fill_lama(result: torch.Tensor, photo: torch.Tensor, channels: int, crops: list[Crop], holes: np.ndarray,
               labels: np.ndarray, run: _LamaRun, check_interrupt: Callable[[], None] | None) -> None:
    height, width = holes.shape
    # Crops grown to multiples of 8 (more context rather than padding), then same sizes batched.
    grown = [Crop(_grow_to_multiple(crop.box, LAMA_MULTIPLE, height, width), crop.parts) for crop in crops]
    grown.sort(key=lambda crop: (crop.height, crop.width))
    batch: list[tuple[Crop, torch.Tensor, torch.Tensor, tuple[int, int]]] = []

    def flush() -> None:
        if not batch:
            return
        output = run.run(torch.stack([entry[1] for entry in batch]), torch.stack([entry[2] for entry in batch]))
        for (crop, _, _, size), filled in zip(batch, output.cpu()):
            filled = filled[:, :size[0], :size[1]]
            if size != (crop.height, crop.width):  # downscaled: the fill goes back to the crop's size
                filled = F.interpolate(filled[None], size=(crop.height, crop.width), mode="bilinear",
                                       align_corners=False)[0].clamp_(0, 1)
            if channels == 1:
                filled = filled.mean(0, keepdim=True)
            _write(result, channels, crop, _owned(crop, labels), filled)
        batch.clear()

    for crop in grown:
        if check_interrupt is not None:
            check_interrupt()
        image, mask, size = run.prepare(photo, channels, crop, holes)
        if batch and batch[0][1].shape != image.shape:
            flush()
        batch.append((crop, image, mask, size))
        if (len(batch) + 1) * image.shape[-1] * image.shape[-2] > run.batch_pixels:
            flush()  # full: run it now rather than hold it
    flush()


def working_bytes(height: int, width: int, channels: int, method: Method) -> int:
    """About the memory filling one photo of height x width x channels (float32) takes: the result's
    copy and the whole-mask maps, which grow with the photo, and for LaMa its largest crops, which
    do not (a 24 MP photo, 1 % damaged: 498 MiB measured with Telea against 595 MiB here)."""
    return height * width * (4 * channels + MASK_MAP_BYTES_PER_PIXEL) + (LAMA_WORKING_BYTES if method == "lama" else 0)


def fill(photos: torch.Tensor, masks: torch.Tensor, method: Method = "telea", network: nn.Module | None = None,
         check_interrupt: Callable[[], None] | None = None, *, dilation_px: int = DEFAULT_DILATION_PX,
         radius: float = DEFAULT_RADIUS, context: float = DEFAULT_CONTEXT, min_context: int = MIN_CONTEXT,
         max_context: int = MAX_CONTEXT, tile: int = TILE, max_side: int = LAMA_MAX_SIDE,
         batch_pixels: int = LAMA_BATCH_PIXELS) -> torch.Tensor:
    """Photos B x C x H x W in [0, 1] with their damage filled inside the masks (B or 1 x 1 x H x
    W, B x H x W or H x W; damaged > 0.5) grown by `dilation_px`: a new tensor of the photos'
    dtype and device, bit-identical to the photos outside the grown masks.

    C = 3 or 4: RGB filled, a fourth (alpha) channel untouched; C = 1 or 2: the first channel
    filled as gray (LaMa sees it as RGB and gives back the mean), a second one untouched.
    `method` "telea" (OpenCV, `radius` px) or "lama" (`network`: a LaMa module, or spandrel's
    descriptor of one, taking image B x 3 x h x w and mask B x 1 x h x w in [0, 1]).
    `check_interrupt` is called before each crop. See the module's description for the crops;
    `max_side` and `batch_pixels` are LaMa's."""
    if photos.ndim != 4:
        raise ValueError(f"expected photos B x C x H x W, got shape {tuple(photos.shape)}")
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    if radius <= 0 or max_side < LAMA_MULTIPLE:
        raise ValueError(f"need radius > 0 and max_side >= {LAMA_MULTIPLE}, got {radius} and {max_side}")
    if method == "lama":
        if network is not None and not isinstance(network, nn.Module) and isinstance(getattr(network, "model", None),
                                                                                   nn.Module):
            network = network.model  # spandrel's descriptor
        if not isinstance(network, nn.Module):
            raise ValueError("the 'lama' method needs a LaMa network (big-lama.pt, loaded by the LaMa loader)")
        network.eval()
    masks = _as_batch_of_masks(masks)
    batch, _, height, width = photos.shape
    if masks.shape[0] not in (1, batch):
        raise ValueError(f"got {masks.shape[0]} masks for {batch} photos: give one mask per photo or one for all")
    if tuple(masks.shape[1:]) != (height, width):
        raise ValueError(f"the mask is {masks.shape[2]}x{masks.shape[1]} px but the photo is {width}x{height} px "
                         "(width x height): give a mask of the photo's own size, e.g. the scratch detector's "
                         "output for this photo")
    if method == "telea":  # Telea reads `radius` px around each hole pixel: the margin holds them
        min_context = max(min_context, math.ceil(radius))
        max_context = max(max_context, min_context)
    channels = 3 if photos.shape[1] >= 3 else 1
    result = photos.clone()
    run = _LamaRun(network, max_side, batch_pixels) if method == "lama" else None
    empty = []
    for index in range(batch):
        holes = holes_of(mask_array(masks[min(index, masks.shape[0] - 1)]) > 0.5, dilation_px)
        if holes.all():
            raise ValueError(f"the mask marks every pixel of photo {index} as damaged (after growing it by "
                             f"{dilation_px} px): nothing is left to fill from. Check the mask: a scratch detector's "
                             "threshold too low, or an inverted mask (white = damaged)")
        crops, labels = plan_crops(holes, context, min_context, max_context, tile)
        if not crops:
            empty.append(index)
            continue
        if run is not None:
            _fill_lama(result[index], photos[index], channels, crops, holes, labels, run, check_interrupt)
            continue
        for crop in crops:
            if check_interrupt is not None:
                check_interrupt()
            _write(result[index], channels, crop, _owned(crop, labels),
                   _telea(photos[index], channels, crop, holes, radius))
    if empty:
        which = "the mask is" if len(empty) == batch else f"the masks of photos {', '.join(map(str, empty))} are"
        logging.warning("SSDiff inpainting: %s empty; %s unchanged", which,
                        "the photos pass through" if len(empty) == batch else "those photos pass through")
    return result
