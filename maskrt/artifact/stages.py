"""What each stage of a `cpu` engine takes and gives, as its manifest determines it.

The manifest names the stage files (`stages`) and the architecture (`config`); together they fix
every stage's inputs and outputs: names, ranks, element types, and the dimensions the
architecture sets (C = config.fpn_channels, K = config.num_classes, A = anchors per location,
P / M = the box / mask pool sizes; `?`: any size):

    dense  images [?, 3, ?, ?]          -> p2..p5 [?, C, ?, ?], objectness0..L-1 [?, A, ?, ?],
                                           deltas0..L-1 [?, 4A, ?, ?]     (L: anchor levels)
    box    box_features [?, C, P, P]    -> class_logits [?, K], box_deltas [?, 4K] (4: box_agnostic)
    mask   mask_features [?, C, M, M]   -> mask_logits [?, K, 2M, 2M]   (K = 1: mask_agnostic)

all float32. The builder exports the stages with these names (builders/onnx_export.py), and
loading checks every stage file against them (`check_stage`), so a stage file swapped for
another stage's, or for another model's, is refused in one line naming the stage even when the
manifest's hashes were updated to match it.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import EngineError
from ..model.arch import ANCHOR_SIZES, ASPECT_RATIOS, ArchConfig

FPN_LEVELS = ("p2", "p3", "p4", "p5")
ELEMENT_TYPE = "f32"


@dataclass(frozen=True)
class Port:
    """One input or output: name, shape (None: a dimension of any size), element type."""

    name: str
    shape: tuple[int | None, ...]
    element_type: str = ELEMENT_TYPE

    def __str__(self) -> str:
        dims = ",".join("?" if d is None else str(d) for d in self.shape)
        return f"{self.name} [{dims}] {self.element_type}"


def stage_ports(stage: str, config: ArchConfig) -> tuple[tuple[Port, ...], tuple[Port, ...]]:
    """(inputs, outputs) of `stage` ("dense", "box" or "mask") for an architecture."""
    c, k, a = config.fpn_channels, config.num_classes, len(ASPECT_RATIOS)
    levels = range(len(ANCHOR_SIZES))
    if stage == "dense":
        outputs = [Port(name, (None, c, None, None)) for name in FPN_LEVELS]
        outputs += [Port(f"objectness{i}", (None, a, None, None)) for i in levels]
        outputs += [Port(f"deltas{i}", (None, 4 * a, None, None)) for i in levels]
        return (Port("images", (None, 3, None, None)),), tuple(outputs)
    if stage == "box":
        p = config.box_pool_size
        boxes = 1 if config.box_agnostic else k  # a class-agnostic regression has one box for all classes
        return (Port("box_features", (None, c, p, p)),), (Port("class_logits", (None, k)),
                                                          Port("box_deltas", (None, 4 * boxes)))
    if stage == "mask":
        m = config.mask_pool_size
        masks = 1 if config.mask_agnostic else k  # a class-agnostic mask head has one mask for all classes
        return (Port("mask_features", (None, c, m, m)),), (Port("mask_logits", (None, masks, 2 * m, 2 * m)),)
    raise EngineError(f"unknown stage {stage!r}")


def check_stage(where: str, stage: str, config: ArchConfig, inputs: list[Port], outputs: list[Port]) -> None:
    """EngineError (one line: `where`, the stage, the first difference) unless the stage's ports
    are those stage_ports gives. A dimension is compared where both sides fix it."""
    expected_in, expected_out = stage_ports(stage, config)
    for what, want, got in (("inputs", expected_in, inputs), ("outputs", expected_out, outputs)):
        if [p.name for p in got] != [p.name for p in want]:
            raise EngineError(f"{where}: stage {stage} has {what} {', '.join(p.name for p in got) or 'none'}; "
                              f"the manifest's {stage} stage has {', '.join(p.name for p in want)} "
                              "(a stage file swapped or from another model?)")
        for g, w in zip(got, want):
            same_dims = len(g.shape) == len(w.shape) and all(
                a is None or b is None or a == b for a, b in zip(g.shape, w.shape))
            if g.element_type != w.element_type or not same_dims:
                raise EngineError(f"{where}: stage {stage} has {what[:-1]} {g}; the manifest's model needs {w} "
                                  "(a stage file from another model?)")
