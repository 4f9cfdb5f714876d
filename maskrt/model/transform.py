"""Input transform: torchvision's GeneralizedRCNNTransform numerics (inference only), or
detectron2's (DefaultPredictor: ResizeShortestEdge on the uint8 image, then normalisation).

torchvision (resize="torchvision"): normalise ((x - mean) / std on [0, 1] floats), resize
bilinearly (align_corners=False) by scale = min(min_size / min(h, w), max_size / max(h, w)) with
output size floor(h * scale), at least 1 (torchvision fails on images so thin that a side would
round to 0 pixels, e.g. 2 x 5000; every other size is computed exactly as torchvision does).

detectron2 (resize="detectron2"): the size is ResizeShortestEdge's (float64: the short side to
min_size, the long side scaled alike, both scaled down if the long side exceeds max_size, then
int(x + 0.5): round half up, at least 1); the uint8 image is resized with Pillow's bilinear
filter (antialiased when shrinking, 8-bit result) and normalised as (x - mean) / std on 0..255
values (mean and std in that scale).

Either way the channels are put in the order the network takes (`channels`: "RGB", or "BGR" for
detectron2's default INPUT.FORMAT) and the images are zero-padded (in normalised space) at the
bottom/right to a multiple of 32.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..kernels import glue_threads
from ..kernels._numba import compiled_on_first_use
from ..kernels._triton import device_values, upload

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SIZE_DIVISIBLE = 32
CHANNEL_ORDERS = ("RGB", "BGR")
RESIZE_MODES = ("torchvision", "detectron2")


@dataclass(frozen=True)
class InputPolicy:
    """How images are sized and normalised before the network. mean / std are in the network's
    channel order, on [0, 1] pixels (resize "torchvision") or 0..255 pixels ("detectron2")."""

    min_size: int = 800
    max_size: int = 1333
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    channels: str = "RGB"
    resize: str = "torchvision"

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) after resizing (torchvision: as F.interpolate computes it; detectron2: as
        ResizeShortestEdge.get_output_shape does), each at least 1."""
        if self.resize == "detectron2":
            size = float(self.min_size)
            scale = size / min(height, width)
            newh, neww = (size, scale * width) if height < width else (scale * height, size)
            if max(newh, neww) > self.max_size:
                shrink = self.max_size / max(newh, neww)
                newh, neww = newh * shrink, neww * shrink
            return max(1, int(newh + 0.5)), max(1, int(neww + 0.5))
        scale = min(self.min_size / min(height, width), self.max_size / max(height, width))
        return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))

    @classmethod
    def from_manifest(cls, policy: dict, min_size: int | None = None, max_size: int | None = None) -> "InputPolicy":
        """The policy of an engine's manifest `input_policy` (older manifests: torchvision's RGB
        transform), with min_size / max_size overridden when given."""
        return cls(min_size or policy["min_size"], max_size or policy["max_size"], tuple(policy["mean"]),
                   tuple(policy["std"]), policy.get("channels", "RGB"), policy.get("resize", "torchvision"))


def normalize_and_resize(image: Tensor, policy: InputPolicy) -> Tensor:
    """Tensor[3, H, W] float in [0, 1], RGB -> Tensor[3, h, w] in the network's channel order,
    normalised and resized."""
    if policy.resize == "detectron2":
        return _detectron2_input(image, policy)
    if policy.channels == "BGR":
        image = image.flip(0)
    mean = device_values(policy.mean, image.dtype, image.device)  # no host-to-device copy: no sync on a GPU
    std = device_values(policy.std, image.dtype, image.device)
    return resized_by_policy((image - mean[:, None, None]).div_(std[:, None, None]), policy)


def resized_by_policy(image: Tensor, policy: InputPolicy) -> Tensor:
    """Normalised Tensor[3, H, W] -> Tensor[3, h, w] at the policy's size (torchvision's bilinear
    resize, align_corners=False); the image itself when that is its size."""
    size = policy.resized_size(image.shape[-2], image.shape[-1])
    if tuple(size) == tuple(image.shape[-2:]) and not torch.jit.is_tracing():
        return image  # bilinear (half-pixel centres) to the same size weighs each pixel by 1, its neighbour by 0
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def detectron2_resized(rgb: np.ndarray, policy: InputPolicy) -> np.ndarray:
    """np.ndarray[H, W, 3] uint8 RGB -> np.ndarray[h, w, 3] uint8 in the network's channel order,
    resized to `resized_size` by Pillow's bilinear filter (detectron2's ResizeTransform on uint8)."""
    from PIL import Image

    h, w = policy.resized_size(rgb.shape[0], rgb.shape[1])
    array = np.asarray(Image.fromarray(rgb).resize((w, h), Image.BILINEAR))
    return np.ascontiguousarray(array[:, :, ::-1] if policy.channels == "BGR" else array)


def detectron2_normalized(rgb: np.ndarray, policy: InputPolicy) -> np.ndarray:
    """np.ndarray[H, W, 3] uint8 RGB -> np.ndarray[3, h, w] float32: `detectron2_resized`, then
    (x - mean) / std on 0..255 values (float32 subtraction and division, as torch computes them)."""
    array = detectron2_resized(rgb, policy).transpose(2, 0, 1).astype(np.float32)
    mean = np.asarray(policy.mean, dtype=np.float32)[:, None, None]
    std = np.asarray(policy.std, dtype=np.float32)[:, None, None]
    return np.ascontiguousarray((array - mean) / std)


def _detectron2_input(image: Tensor, policy: InputPolicy) -> Tensor:
    """detectron2's DefaultPredictor input of a [0, 1] float image (uint8 / 255: the uint8 image
    is recovered exactly by round(x * 255)), `detectron2_normalized` on the host."""
    pixels = (image.detach().float().cpu() * 255).round_().clamp_(0, 255).to(torch.uint8)
    normalized = torch.from_numpy(detectron2_normalized(pixels.permute(1, 2, 0).numpy(), policy))
    return upload(normalized, image.device, "frame (detectron2: preprocessed on the host)")


def batch_images(images: list[Tensor]) -> Tensor:
    """Zero-pad Tensor[3, h_i, w_i] images to one Tensor[B, 3, H, W], H and W multiples of 32."""
    height = max(img.shape[-2] for img in images)
    width = max(img.shape[-1] for img in images)
    height, width = padded_to_32(height), padded_to_32(width)
    batch = images[0].new_zeros((len(images), 3, height, width))
    for i, img in enumerate(images):
        batch[i, :, : img.shape[-2], : img.shape[-1]].copy_(img)
    return batch


def preprocess(images: list[Tensor], policy: InputPolicy) -> tuple[Tensor, list[tuple[int, int]]]:
    """Images Tensor[3, H, W] -> (padded batch Tensor[B, 3, H', W'], resized sizes). An image is
    float in [0, 1], or uint8 standing for value / 255 (`to_float`'s values; any strides, e.g. the
    channels-last view of an RGB frame: the engine's frames are never converted to float whole).

    float32 and uint8 images on the host (torchvision's transform, not traced) are normalised in one
    pass (`normalize_into`: the same float32 subtraction and division, bitwise the same result),
    straight into the padded batch when the policy keeps their size (R50 at 800x1333: 7.6 -> 2.8 ms
    on one thread); everything else (GPU tensors, a traced graph, detectron2's transform) runs
    torch's ops."""
    if not all(_on_the_host_path(img, policy) for img in images):
        resized = [normalize_and_resize(to_float(img), policy) for img in images]
        return batch_images(resized), [(int(r.shape[-2]), int(r.shape[-1])) for r in resized]
    sizes = [policy.resized_size(int(img.shape[-2]), int(img.shape[-1])) for img in images]
    if any(tuple(size) != tuple(img.shape[-2:]) for img, size in zip(images, sizes)):
        resized = [resized_by_policy(normalize_into(img, policy, torch.empty(img.shape)), policy) for img in images]
        return batch_images(resized), sizes
    height, width = (padded_to_32(max(s[k] for s in sizes)) for k in (0, 1))
    batch = torch.empty((len(images), 3, height, width))
    for img, slot in zip(images, batch):
        normalize_into(img, policy, slot)
    return batch, sizes


@functools.cache
def warm_up() -> None:
    """Compile (or load from numba's cache) `normalize_into`'s kernel for every layout preprocessing
    gives it: an image at the policy's size (into the padded batch) and resized (into its own
    tensor), in one row block and in two (large images); channels-last views as frames arrive,
    uint8 (an engine's frames) and float32."""
    g = torch.Generator().manual_seed(0)
    for h, w in ((40, 56), (520, 600)):  # 520 x 600 >= NORMALIZE_THREADED_PIXELS: two row blocks
        pixels = torch.randint(0, 256, (h, w, 3), generator=g, dtype=torch.uint8)
        for image in (pixels.permute(2, 0, 1), to_float(pixels).permute(2, 0, 1)):
            preprocess([image], InputPolicy(min_size=h, max_size=w))  # kept at its size
            preprocess([image], InputPolicy(min_size=h + 8, max_size=w + 8))  # resized


def padded_to_32(size: int) -> int:
    """size rounded up to a multiple of SIZE_DIVISIBLE."""
    return int(math.ceil(size / SIZE_DIVISIBLE) * SIZE_DIVISIBLE)


def _on_the_host_path(image: Tensor, policy: InputPolicy) -> bool:
    return (policy.resize == "torchvision" and image.device.type == "cpu"
            and image.dtype in (torch.float32, torch.uint8) and not torch.jit.is_tracing())


def to_float(image: Tensor) -> Tensor:
    """A uint8 image as float32 value / 255 (the values every frame is taken as: to_float_chw's
    `float().div_(255.0)`); a float image as it is."""
    return image.float().div_(255.0) if image.dtype == torch.uint8 else image


@functools.lru_cache(maxsize=8)
def normalizing_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """float32 [3, 256]: table[k, v] = (to_float(v) - mean[k]) / std[k], computed by torch's own ops
    (to_float's division, normalize_and_resize's subtraction and division): a uint8 image is then
    normalised by looking its values up, bit for bit the float path's result."""
    values = to_float(torch.arange(256, dtype=torch.uint8))
    mean_t, std_t = torch.tensor(mean, dtype=torch.float32), torch.tensor(std, dtype=torch.float32)
    return (values[None, :] - mean_t[:, None]).div_(std_t[:, None]).numpy()


NORMALIZE_THREADED_PIXELS = 1 << 18  # output pixels below which one thread normalises the whole image


def normalize_into(image: Tensor, policy: InputPolicy, out: Tensor) -> Tensor:
    """Tensor[3, h, w] RGB, float32 in [0, 1] or uint8 (value / 255), any strides (an RGB frame's
    channels-last view) -> `out` Tensor[3, H, W] float32 (H >= h, W >= w), returned: out[k, :h, :w] =
    (image[c_k] - mean[k]) / std[k] in float32, c_k the network's channel order, and zeros elsewhere
    (the batch's padding, zeroed by numpy). One pass in numba over the image's rows, by row blocks on
    the glue's threads when large; bitwise normalize_and_resize's values: float32 subtraction, then
    division (`_normalize_rows`), or for uint8 the same values looked up (`normalizing_table`,
    `_look_up_rows`)."""
    pixels = image.numpy()
    if policy.channels == "BGR":
        pixels = pixels[::-1]
    if pixels.dtype == np.uint8:
        table = normalizing_table(tuple(policy.mean), tuple(policy.std))
        kernel, constants = _look_up_kernel(), (table,)
    else:
        kernel, constants = _normalize_kernel(), (np.asarray(policy.mean, np.float32),
                                                  np.asarray(policy.std, np.float32))
    target = out.numpy()
    h, w = pixels.shape[1], pixels.shape[2]
    target[:, :h, w:] = 0  # the batch's padding
    target[:, h:] = 0
    blocks = 2 if h * w >= NORMALIZE_THREADED_PIXELS else 1
    edges = [h * i // blocks for i in range(blocks + 1)]
    glue_threads.map_balanced(lambda i: kernel(pixels[:, edges[i]:edges[i + 1]], *constants,
                                               target[:, edges[i]:edges[i + 1]]), range(blocks))
    return out


def _normalize_rows(pixels, mean, std, out):  # pragma: no cover - compiled by numba
    """out[k, y, x] = (pixels[k, y, x] - mean[k]) / std[k] over pixels' [3, h, w] (out: [3, >= h, >= w]);
    all float32."""
    for k in range(pixels.shape[0]):
        m, s = mean[k], std[k]
        for y in range(pixels.shape[1]):
            for x in range(pixels.shape[2]):
                out[k, y, x] = (pixels[k, y, x] - m) / s


_normalize_kernel = compiled_on_first_use(_normalize_rows)  # no fastmath: float32 ops as torch's


def _look_up_rows(pixels, table, out):  # pragma: no cover - compiled by numba
    """out[k, y, x] = table[k, pixels[k, y, x]] over pixels' uint8 [3, h, w] (out: float32 [3, >= h,
    >= w]; table: float32 [3, 256])."""
    for k in range(pixels.shape[0]):
        for y in range(pixels.shape[1]):
            for x in range(pixels.shape[2]):
                out[k, y, x] = table[k, pixels[k, y, x]]


_look_up_kernel = compiled_on_first_use(_look_up_rows)
