#!/usr/bin/env python
"""Train the bundled shapes model: torchvision Mask R-CNN, ResNet-18-FPN (64 ch), from scratch on CPU.

Reproduces maskrt/assets/shapes_r18fpn64.safetensors:

    .venv/bin/python tools/train_shapes.py --steps 2000 --warmup 150 --out maskrt/assets/shapes_r18fpn64.safetensors

Seeded and deterministic on a given machine (torch.use_deterministic_algorithms, seeded data:
training scenes come from maskrt.data with seed 1000 + step, never from the evaluation seeds).
From scratch: real BatchNorm (FrozenBatchNorm2d would not normalise untrained statistics),
AdamW with a linear warm-up then cosine decay, gradient clipping. Saved in torchvision's key
layout (BatchNorm folded into no extra keys: running stats are kept), fp16, with class names
and the input-size policy in the safetensors metadata, so `maskrt.load(path)` needs nothing else.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from maskrt.data import CLASS_NAMES, make_scene  # noqa: E402
from maskrt.model import save_checkpoint  # noqa: E402

FPN_CHANNELS = 64
REPRESENTATION = 128
IMAGE_SIZE = 320
TRAIN_SEED = 1000  # evaluation and tests use other seeds


def build_model(num_classes: int) -> MaskRCNN:
    """ResNet-18 body with trainable BatchNorm, narrow FPN and heads; torchvision key layout."""
    body = resnet18(weights=None, norm_layer=nn.BatchNorm2d)
    backbone = BackboneWithFPN(body, {f"layer{i}": str(i - 1) for i in range(1, 5)}, [64, 128, 256, 512],
                               FPN_CHANNELS)
    return MaskRCNN(
        backbone,
        num_classes=None,
        min_size=IMAGE_SIZE,
        max_size=IMAGE_SIZE,
        rpn_pre_nms_top_n_train=1000,
        rpn_post_nms_top_n_train=500,
        box_batch_size_per_image=128,
        box_head=TwoMLPHead(FPN_CHANNELS * 49, REPRESENTATION),
        box_predictor=FastRCNNPredictor(REPRESENTATION, num_classes),
        mask_head=MaskRCNNHeads(FPN_CHANNELS, [FPN_CHANNELS] * 4, 1),
        mask_predictor=MaskRCNNPredictor(FPN_CHANNELS, FPN_CHANNELS, num_classes),
    )


def make_batch(step: int, batch_size: int, data_offset: int = 0) -> tuple[list[torch.Tensor], list[dict]]:
    """Scenes of seed TRAIN_SEED + data_offset + step (fresh scenes when continuing a model)."""
    images, targets = [], []
    seed = TRAIN_SEED + data_offset + step
    for i in range(batch_size):
        scene = make_scene(seed, i, size=(IMAGE_SIZE, IMAGE_SIZE))
        if scene.num_instances == 0:
            scene = make_scene(seed, i + batch_size, size=(IMAGE_SIZE, IMAGE_SIZE))
        images.append(torch.from_numpy(scene.image).permute(2, 0, 1).float() / 255.0)
        targets.append({
            "boxes": torch.from_numpy(scene.boxes).float().reshape(-1, 4),
            "labels": torch.from_numpy(scene.labels).long(),
            "masks": torch.from_numpy(scene.masks.astype(np.uint8)),
        })
    return images, targets


def learning_rate(step: int, steps: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (0.01 + 0.99 * step / warmup)
    progress = (step - warmup) / max(1, steps - warmup)
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * progress)))


def train(args: argparse.Namespace) -> None:
    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    model = build_model(len(CLASS_NAMES) + 1).train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=1e-4)
    if args.init:
        init_from(model, args.init)
    first = resume(model, optimizer, args.resume) if args.resume else 0
    start = time.time()
    for step in range(first, args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        images, targets = make_batch(step, args.batch_size, args.data_offset)
        losses = model(images, targets)
        loss = sum(losses.values())
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 10.0)
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            parts = " ".join(f"{k.replace('loss_', '')}={v.item():.3f}" for k, v in losses.items())
            print(f"step {step:5d}/{args.steps} loss={loss.item():.3f} {parts} lr={optimizer.param_groups[0]['lr']:.2e}"
                  f" {time.time() - start:.0f}s", flush=True)
        if args.checkpoint_every and step and step % args.checkpoint_every == 0:
            save(model, args.out, optimizer, step + 1)
    save(model, args.out, optimizer, args.steps)
    print(f"saved {args.out} after {args.steps} steps in {time.time() - start:.0f}s", flush=True)


def save(model: MaskRCNN, out: Path, optimizer: torch.optim.Optimizer, next_step: int) -> None:
    """The fp16 safetensors checkpoint to ship, plus OUT.state.pt (fp32 weights, optimizer, step) to resume."""
    state = {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    save_checkpoint(out, state, classes=CLASS_NAMES, min_size=IMAGE_SIZE, max_size=IMAGE_SIZE, half=True)
    resume_path = out.with_name(out.name + ".state.pt")
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "step": next_step,
                "rng": torch.get_rng_state()},
               str(resume_path) + ".tmp")
    Path(str(resume_path) + ".tmp").replace(resume_path)


def init_from(model: MaskRCNN, path: Path) -> None:
    """Start from a shipped checkpoint's weights (fp16 safetensors are loaded as fp32)."""
    from maskrt.model import load_checkpoint

    state = load_checkpoint(path).state_dict
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.endswith("num_batches_tracked") for k in missing):
        raise SystemExit(f"{path} does not match the training architecture")
    print(f"initialised from {path}", flush=True)


def resume(model: MaskRCNN, optimizer: torch.optim.Optimizer, path: Path) -> int:
    """Load OUT.state.pt written by `save`; returns the step to continue from."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng"])
    print(f"resumed from {path} at step {state['step']}", flush=True)
    return int(state["step"])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--warmup", type=int, default=150)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--checkpoint-every", type=int, default=250)
    p.add_argument("--data-offset", type=int, default=0, help="shift the scene seeds (use fresh data when continuing)")
    p.add_argument("--init", type=Path, help="start from the weights of a saved checkpoint (e.g. the bundled one)")
    p.add_argument("--resume", type=Path, help="continue from OUT.state.pt (the schedule uses --steps)")
    p.add_argument("--out", type=Path, default=Path("maskrt/assets/shapes_r18fpn64.safetensors"))
    return p.parse_args(argv)


if __name__ == "__main__":
    train(parse_args())
