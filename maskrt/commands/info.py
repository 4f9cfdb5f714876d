"""`maskrt info ENGINE | CHECKPOINT`: the manifest, or what maskrt infers from a checkpoint, readably."""

from __future__ import annotations

from pathlib import Path

from ..artifact import read_manifest
from ..artifact.checks import BOX_FORMS


def print_engine_info(engine_dir: str | Path) -> int:
    m = read_manifest(engine_dir)  # verifies format version and payload hashes
    if m.target == "cpu" and m.stages:  # each stage file read and checked against the manifest
        from ..engine.backends.openvino_backend import read_stages

        read_stages(Path(engine_dir), m)
    cfg = m.config
    pol = m.input_policy
    det = m.thresholds.get("detection", {})
    print(f"engine:       {engine_dir}")
    print(f"format:       version {m.format_version}, built by maskrt {m.versions.get('maskrt', '?')}")
    print(f"target:       {m.target} ({m.precision})")
    print(f"architecture: {cfg.name} ({cfg.variant}), {_backbone(cfg)}, FPN {cfg.fpn_channels} channels")
    print(f"input size:   min {pol['min_size']}, max {pol['max_size']}, any size (dynamic), padded to "
          f"{pol.get('size_divisible', 32)}; {pol.get('channels', 'RGB')}, {pol.get('resize', 'torchvision')} resize")
    print(f"thresholds:   score > {det.get('score_thresh')}, NMS IoU {det.get('nms_thresh')}, "
          f"max {det.get('detections_per_img')} detections")
    print(f"proposals:    {proposals_line(m.thresholds['rpn'])}")
    if m.box_form:
        f = m.box_form
        times = ", ".join(f"{form} {f['ms'][form]} ms" for form in BOX_FORMS if form in f["ms"])
        print(f"box head:     fully connected layers as {f['form']} ({f['chosen_by']}: {times} on {f['rows']} RoIs, "
              f"{f['precision']})")
    print(f"classes ({cfg.num_classes - 1} + background): {', '.join(m.classes[1:])}")
    print(f"source:       {m.source.get('path')} (sha256 {m.source.get('sha256', 'n/a')[:16]})")
    _print_provenance(m.source)
    if m.quantization:
        _print_quantization(m.quantization)
    if m.target == "cpu" and m.stages:
        print(f"stages:       {', '.join(m.stages)}: inputs and outputs as the manifest declares")
    print("payload:")
    for name, digest in m.files.items():
        size = (Path(engine_dir) / name).stat().st_size
        print(f"  {name:<16} {size / 1e6:8.2f} MB  sha256 {digest[:16]}")
    print("versions:     " + ", ".join(f"{k} {v}" for k, v in sorted(m.versions.items())))
    return 0


def print_checkpoint_info(loaded) -> int:
    """What maskrt infers from a checkpoint (a maskrt.model.LoadedModel)."""
    cfg, policy = loaded.config, loaded.model.policy
    print(f"model:        {loaded.source}")
    print(f"architecture: {cfg.name} ({cfg.variant})")
    print(f"backbone:     {_backbone(cfg)}, FPN {cfg.fpn_channels} channels")
    print(f"input size:   min {policy.min_size}, max {policy.max_size}")
    print(f"proposals:    {proposals_line(loaded.model.detector.proposals.params)}")
    print(f"classes ({cfg.num_classes - 1} + background): {', '.join(loaded.classes[1:])}")
    _print_provenance(loaded.provenance)
    return 0


def _backbone(cfg) -> str:
    """ResNet-50, or ResNeXt-50 8x8d; stride placement and class-agnostic heads for detectron2 models."""
    name = f"ResNet-{cfg.depth}" if cfg.groups == 1 else f"ResNeXt-{cfg.depth} {cfg.groups}x{cfg.width_per_group}d"
    extras = [x for x, on in (("stride in 1x1", cfg.stride_in_1x1), ("class-agnostic boxes", cfg.box_agnostic),
                              ("class-agnostic masks", cfg.mask_agnostic)) if on]
    return name + (f" ({', '.join(extras)})" if extras else "")


def _print_provenance(source: dict) -> None:
    """A detectron2 checkpoint: its numerics, and the config given or the values maskrt assumed."""
    if source.get("format") != "detectron2":
        return
    print("checkpoint:   detectron2 (built and run with detectron2's inference numerics)")
    if source.get("config"):
        print(f"config:       {source['config']}")
        return
    assumed = source.get("assumed", {})
    print(f"assumed:      no --config: the model zoo's Mask R-CNN FPN values for {len(assumed)} settings the weights "
          "cannot tell:")
    for key, value in assumed.items():
        print(f"  {key} = {value}")


def proposals_line(rpn) -> str:
    """RPN parameters (an RPNParams or the manifest's thresholds.rpn dict) as one line."""
    get = rpn.get if isinstance(rpn, dict) else lambda key: getattr(rpn, key)
    return (f"{get('post_nms_top_n')} per image after NMS (IoU {get('nms_thresh')}), "
            f"{get('pre_nms_top_n')} per level before")


def _print_quantization(q: dict) -> None:
    """int8 engines: how they were quantized and on what (maskrt.builders.quantize's record)."""
    cal = q.get("calibration", {})
    order = {name: i for i, name in enumerate(("dense", "box", "mask"))}
    stages = ", ".join(f"{s} {kind}" for s, kind in sorted(q.get("stages", {}).items(), key=lambda x: order.get(x[0])))
    print(f"quantized:    NNCF {q.get('nncf', '?')} post-training, {q.get('preset', '?')} preset; {stages}")
    print(f"calibration:  {cal.get('size', '?')} images, {cal.get('source', '?')}, sha256 "
          f"{str(cal.get('sha256', 'n/a'))[:16]}")
    floats = q.get("float_layers", {})
    kept = ", ".join(f"{s} {len(floats[s])}" for s in sorted(floats, key=order.get))
    groups = ", ".join(q.get("float_groups", [])) or "none"
    print(f"float layers: {kept or 'none'} (groups: {groups})")
