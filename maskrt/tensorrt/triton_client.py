"""maskrt's plans as a Triton Inference Server serves them: the client side, standalone.

This file is copied into every model repository `maskrt export ENGINE --triton-repo DIR` writes
(as DIR/client.py, beside maskrt_input.json) and needs only the Python standard library and numpy;
tritonclient (`pip install 'tritonclient[http]'`) to talk to the server, Pillow to read image
files. No torch, no maskrt. maskrt's plan-only runner (plan_runner.py) uses the same contract and
preprocessing, also without torch.

    python client.py IMAGE [--url localhost:8000] [--masks] > detections.jsonl

The models (config.pbtxt beside each plan; batch 1, no dynamic batching: the detection count of
each image is its own):
- `maskrt` (model.plan): images [1, 3, H, W] (FP32, or FP16 for an fp16 engine: the frame
  normalised, resized by the engine's input policy, zero-padded to multiples of 32; `preprocess`),
  image_hw [2] INT64 (the resized size) -> boxes [N, 4] FP32 (resized-image pixels), scores [N]
  FP32 (descending), labels [N] INT64, mask_probs [N, M, M] FP32.
- `maskrt_paste` (paste.plan): mask_probs, boxes, image_hw as above, image [H, W, 3] UINT8 (the
  original frame; only its size is read) -> boxes_px [N, 4] FP32 (original pixels), masks [N, H,
  W] BOOL (probability > 0.5).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

MODEL, PASTE_MODEL = "maskrt", "maskrt_paste"
SETTINGS = "maskrt_input.json"  # the engine's input policy, precision and class names
SIZE_DIVISIBLE = 32
NUMPY_TYPES = {"FP32": np.float32, "FP16": np.float16, "INT64": np.int64, "UINT8": np.uint8, "BOOL": np.bool_}


def model_io(precision: str = "fp32", mask_size: int = 28) -> tuple[list, list]:
    """(inputs, outputs) of model.plan: (name, Triton datatype, dims with -1 = any size)."""
    inputs = [("images", "FP16" if precision == "fp16" else "FP32", [1, 3, -1, -1]), ("image_hw", "INT64", [2])]
    outputs = [("boxes", "FP32", [-1, 4]), ("scores", "FP32", [-1]), ("labels", "INT64", [-1]),
               ("mask_probs", "FP32", [-1, mask_size, mask_size])]
    return inputs, outputs


def paste_io(mask_size: int = 28) -> tuple[list, list]:
    """(inputs, outputs) of paste.plan."""
    inputs = [("mask_probs", "FP32", [-1, mask_size, mask_size]), ("boxes", "FP32", [-1, 4]),
              ("image_hw", "INT64", [2]), ("image", "UINT8", [-1, -1, 3])]
    return inputs, [("boxes_px", "FP32", [-1, 4]), ("masks", "BOOL", [-1, -1, -1])]


def resized_size(height: int, width: int, policy: dict) -> tuple[int, int]:
    """(h, w) after resizing: maskrt.model.InputPolicy.resized_size (torchvision's rule, or
    detectron2's ResizeShortestEdge for resize "detectron2")."""
    min_size, max_size = policy["min_size"], policy["max_size"]
    if policy.get("resize") == "detectron2":
        scale = float(min_size) / min(height, width)
        newh, neww = (float(min_size), scale * width) if height < width else (scale * height, float(min_size))
        if max(newh, neww) > max_size:
            shrink = max_size / max(newh, neww)
            newh, neww = newh * shrink, neww * shrink
        return max(1, int(newh + 0.5)), max(1, int(neww + 0.5))
    scale = min(min_size / min(height, width), max_size / max(height, width))
    return max(1, math.floor(height * scale)), max(1, math.floor(width * scale))


def preprocess(image: np.ndarray, settings: dict) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [H, W, 3] RGB -> (images [1, 3, H', W'], image_hw int64 [2]): maskrt.model.transform's
    preprocessing in numpy, written again here so that this file stands alone. torchvision's
    (float32: x / 255, (x - mean) / std, bilinear resize with align_corners=False; equal to torch's
    up to float32 rounding, a few 1e-7) or detectron2's (Pillow's bilinear resize of the uint8
    frame, then (x - mean) / std on 0..255: identical); channels reordered to the network's (BGR for
    detectron2 models); zero padding to multiples of 32 (tests/tensorrt/test_triton_repo.py)."""
    policy = settings["input_policy"]
    h, w = resized_size(image.shape[0], image.shape[1], policy)
    bgr = policy.get("channels", "RGB") == "BGR"
    if policy.get("resize") == "detectron2":
        from PIL import Image

        x = np.asarray(Image.fromarray(image).resize((w, h), Image.BILINEAR))
        x = (x[:, :, ::-1] if bgr else x).astype(np.float32)
        x = (x - np.asarray(policy["mean"], np.float32)) / np.asarray(policy["std"], np.float32)
    else:
        x = (image[:, :, ::-1] if bgr else image).astype(np.float32) / np.float32(255.0)
        x = (x - np.asarray(policy["mean"], np.float32)) / np.asarray(policy["std"], np.float32)
        rows, cols = _taps(image.shape[0], h), _taps(image.shape[1], w)
        x = x[rows[0]] * rows[2][:, None, None] + x[rows[1]] * rows[3][:, None, None]
        x = x[:, cols[0]] * cols[2][None, :, None] + x[:, cols[1]] * cols[3][None, :, None]
    ph, pw = (-(-h // SIZE_DIVISIBLE) * SIZE_DIVISIBLE, -(-w // SIZE_DIVISIBLE) * SIZE_DIVISIBLE)
    images = np.zeros((1, 3, ph, pw), np.float32)
    images[0, :, :h, :w] = x.transpose(2, 0, 1)
    dtype = np.float16 if settings.get("precision") == "fp16" else np.float32
    return images.astype(dtype), np.array([h, w], np.int64)


def _taps(size_in: int, size_out: int):
    """(i0, i1, w0, w1) of bilinear resizing size_in -> size_out (align_corners=False, as torch)."""
    scale = np.float32(size_in / size_out)
    src = np.maximum((np.arange(size_out, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5), 0)
    i0 = np.minimum(src.astype(np.int64), size_in - 1)
    i1 = np.minimum(i0 + 1, size_in - 1)
    w1 = (src - i0).astype(np.float32)
    return i0, i1, np.float32(1) - w1, w1


def requests(image: np.ndarray, settings: dict) -> dict[str, np.ndarray]:
    """The `maskrt` model's inputs for one frame."""
    images, image_hw = preprocess(image, settings)
    return {"images": images, "image_hw": image_hw}


def paste_requests(detections: dict, image_hw: np.ndarray, image: np.ndarray) -> dict[str, np.ndarray]:
    """The `maskrt_paste` model's inputs: the detections of `maskrt` and the original frame."""
    return {"mask_probs": detections["mask_probs"], "boxes": detections["boxes"], "image_hw": image_hw,
            "image": np.ascontiguousarray(image, dtype=np.uint8)}


def infer_inputs(client_module, arrays: dict[str, np.ndarray], io: list) -> list:
    """tritonclient InferInput objects for `arrays`, in the model's input order; their datatypes are
    the config's (a mismatch is a ValueError here, not a server error)."""
    inputs = []
    for name, datatype, _ in io:
        array = arrays[name]
        if array.dtype != NUMPY_TYPES[datatype]:
            raise ValueError(f"input {name}: {array.dtype}, the model takes {datatype}")
        tensor = client_module.InferInput(name, list(array.shape), datatype)
        tensor.set_data_from_numpy(array)
        inputs.append(tensor)
    return inputs


def infer(client_module, client, model: str, arrays: dict, io: tuple[list, list]) -> dict[str, np.ndarray]:
    """One request to `model`; its outputs as numpy arrays."""
    outputs = [client_module.InferRequestedOutput(name) for name, _, _ in io[1]]
    result = client.infer(model, infer_inputs(client_module, arrays, io[0]), outputs=outputs)
    return {name: result.as_numpy(name) for name, _, _ in io[1]}


def detections_jsonl(found: dict, classes: list[str], ratio: tuple[float, float]) -> list[str]:
    """One JSON line per detection: label, score, box in original pixels (boxes_px when pasted)."""
    boxes = found.get("boxes_px")
    if boxes is None:
        boxes = found["boxes"] * np.array([ratio[1], ratio[0], ratio[1], ratio[0]], np.float32)
    lines = []
    for i, (label, score) in enumerate(zip(found["labels"].tolist(), found["scores"].tolist())):
        record = {"label": classes[label] if label < len(classes) else label, "score": round(score, 5),
                  "box": [round(float(v), 2) for v in boxes[i]]}
        if "masks" in found:
            record["mask_pixels"] = int(found["masks"][i].sum())
        lines.append(json.dumps(record))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Segment one image with maskrt served by Triton Inference Server.")
    parser.add_argument("image", help="an image file (Pillow) or a .npy array [H, W, 3] uint8")
    parser.add_argument("--url", default="localhost:8000", help="the server's HTTP endpoint")
    parser.add_argument("--masks", action="store_true", help="also paste the masks (the maskrt_paste model)")
    args = parser.parse_args(argv)
    import tritonclient.http as client_module

    settings = json.loads((Path(__file__).resolve().parent / SETTINGS).read_text())
    image = np.load(args.image) if args.image.endswith(".npy") else _read_image(args.image)
    client = client_module.InferenceServerClient(args.url)
    arrays = requests(image, settings)
    found = infer(client_module, client, MODEL, arrays, model_io(settings.get("precision", "fp32")))
    if args.masks:
        found.update(infer(client_module, client, PASTE_MODEL, paste_requests(found, arrays["image_hw"], image),
                           paste_io()))
    hw = arrays["image_hw"]
    for line in detections_jsonl(found, settings["classes"], (image.shape[0] / hw[0], image.shape[1] / hw[1])):
        print(line)
    return 0


def _read_image(path: str) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


if __name__ == "__main__":
    sys.exit(main())
