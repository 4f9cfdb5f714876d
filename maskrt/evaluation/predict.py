"""Run a Segmenter over the images of a COCO annotations file and collect COCO results dicts."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from pycocotools.coco import COCO

from ..engine.images import read_image
from ..engine.outputs import instances_json
from ..errors import InputError, MaskrtError
from ..progress import progress_bar
from .coco_eval import load_coco


def image_files(coco_gt: COCO, images_dir: str | Path, img_ids: Sequence[int] | None = None) -> list[tuple[int, Path]]:
    """(image id, path) for each image, in increasing id order, after checking every file exists.

    Paths are `images_dir / file_name`. Raises MaskrtError if images_dir is not a directory and
    InputError naming the first listed image that is missing, before any model work starts.
    """
    folder = Path(images_dir)
    if not folder.is_dir():
        raise MaskrtError(f"images directory not found: {folder}")
    ids = sorted(coco_gt.getImgIds()) if img_ids is None else list(img_ids)
    pairs = [(i, folder / coco_gt.imgs[i]["file_name"]) for i in ids]
    missing = [p for _, p in pairs if not p.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise InputError(f"image listed in the annotations is missing: {missing[0]}{more}")
    return pairs


def category_mapping(classes: Sequence[str], coco_gt: COCO) -> tuple[dict[int, int] | None, str]:
    """How model labels become COCO category ids, and a one-line description of the rule.

    If every ground-truth category name is one of the model's class names (case-insensitive,
    each matching one class), label k maps to the id of the category named classes[k] and labels
    with no such category are dropped. Otherwise (None) label k is category id k, which is how
    the bundled shapes model and torchvision's COCO models number their classes.
    """
    index = {}
    for k, name in enumerate(classes):
        index.setdefault(str(name).lower(), []).append(k)
    cats = coco_gt.loadCats(coco_gt.getCatIds())
    if cats and all(len(index.get(str(c.get("name", "")).lower(), [])) == 1 for c in cats):
        mapping = {index[str(c["name"]).lower()][0]: int(c["id"]) for c in cats}
        if any(k != v for k, v in mapping.items()):
            return mapping, "categories matched by name"
        return None, "categories matched by name (label k = category id k)"
    return None, "category names differ from the model's classes: label k = category id k"


def predict_dataset(seg: Callable, coco_gt: COCO | str | Path, images_dir: str | Path, *,
                    img_ids: Sequence[int] | None = None, progress: bool = True,
                    label_map: dict[int, int] | None = None, max_detections: int = 100) -> list[dict]:
    """COCO results dicts (image_id, category_id, score, bbox xywh, RLE segmentation) for each image.

    seg: a maskrt Segmenter (or any callable image -> Detections); its score threshold decides
    which detections count (use a low one such as 0.05 for AP). Images are read from
    `images_dir / file_name`; each must have the height and width the annotations give
    (InputError otherwise). At most `max_detections` per image, highest scores first
    (COCOeval's own limit is 100). label_map: model label -> category id (see category_mapping);
    labels missing from it are dropped; None keeps labels as category ids. A tqdm bar on stderr
    shows progress unless progress is False.
    """
    coco_gt = load_coco(coco_gt)
    pairs = image_files(coco_gt, images_dir, img_ids)
    results: list[dict] = []
    bar = progress_bar(pairs, desc="eval", unit="img", disable=not progress)
    for image_id, path in bar:
        image = read_image(path)
        info = coco_gt.imgs[image_id]
        if image.shape[:2] != (info["height"], info["width"]):
            raise InputError(f"{path} is {image.shape[1]}x{image.shape[0]} but the annotations say "
                             f"{info['width']}x{info['height']}")
        for inst in instances_json(seg(image))[:max_detections]:
            if label_map is not None:
                if inst["category_id"] not in label_map:
                    continue
                inst["category_id"] = label_map[inst["category_id"]]
            results.append({"image_id": image_id, **inst})
        bar.set_postfix(dets=len(results), refresh=False)
    return results
