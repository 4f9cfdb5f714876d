"""Multi-object tracking metrics of one sequence, computed as TrackEval computes them
(github.com/JonathonLuiten/TrackEval, trackeval/metrics/{hota,clear,identity}.py):

- HOTA (Luiten et al., IJCV 2021) with DetA, AssA, LocA, DetRe, DetPr, AssRe, AssPr, each at
  localisation thresholds alpha = 0.05, 0.10, ..., 0.95 and averaged over them.
- CLEAR MOT (Bernardin & Stiefelhagen 2008): MOTA, MOTP, ID switches, fragmentations, mostly
  tracked / partly tracked / mostly lost, at similarity >= 0.5.
- Identity (Ristani et al. 2016): IDF1, IDP, IDR from the id-to-id matching maximising IDTP.

A sequence is a list of `Frame`s for the ground truth and one for the predictions (ids int [N]
with boxes float [N, 4] xyxy, or masks: N MaskCrop). Similarity is box IoU or mask IoU.
Each id may appear at most once per frame; ids need not be contiguous.

TrackEval's conventions are kept where they matter: a frame without ground truth or without
predictions counts its FPs or FNs but does not reset the CLEAR matching's memory of the previous
frame; the similarity thresholds allow float error (alpha - eps, 0.5 - eps).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Sequence

import numpy as np
from scipy.optimize import linear_sum_assignment

from .boxes import box_iou
from .masks import MaskCrop, mask_iou

ALPHAS = np.arange(0.05, 0.99, 0.05)  # TrackEval's HOTA thresholds: 0.05 .. 0.95
EPS = np.finfo(float).eps


@dataclass(frozen=True)
class Frame:
    """One frame's objects: ids int [N], and boxes float [N, 4] xyxy or masks (N MaskCrop)."""

    ids: np.ndarray
    boxes: np.ndarray | None = None
    masks: Sequence[MaskCrop] | None = None


def _under_names(result, names: tuple[str, ...], value=lambda v: v) -> dict[str, float]:
    """{TrackEval's name: value(field)}: `names` paired in order with the dataclass `result`'s fields."""
    return {name: value(getattr(result, f.name)) for name, f in zip(names, fields(result))}


@dataclass(frozen=True)
class Hota:
    """HOTA and its sub-metrics, each float64 [19]: one value per alpha in ALPHAS."""

    hota: np.ndarray
    deta: np.ndarray
    assa: np.ndarray
    loca: np.ndarray
    detre: np.ndarray
    detpr: np.ndarray
    assre: np.ndarray
    asspr: np.ndarray

    def summary(self) -> dict[str, float]:
        """TrackEval's names -> the averages over alpha (what TrackEval reports)."""
        names = ("HOTA", "DetA", "AssA", "LocA", "DetRe", "DetPr", "AssRe", "AssPr")
        return _under_names(self, names, lambda values: float(np.mean(values)))


@dataclass(frozen=True)
class Clear:
    """CLEAR MOT: counts, and MOTA = (TP - FP - IDSW) / max(1, TP + FN), MOTP = mean matched similarity."""

    mota: float
    motp: float
    tp: int
    fn: int
    fp: int
    idsw: int
    frag: int
    mt: int
    pt: int
    ml: int

    def summary(self) -> dict[str, float]:
        names = ("MOTA", "MOTP", "CLR_TP", "CLR_FN", "CLR_FP", "IDSW", "Frag", "MT", "PT", "ML")
        return _under_names(self, names)


@dataclass(frozen=True)
class Identity:
    """IDF1 = 2 IDTP / (ground-truth + predicted detections); IDP, IDR: identity precision, recall."""

    idf1: float
    idp: float
    idr: float
    idtp: int
    idfn: int
    idfp: int

    def summary(self) -> dict[str, float]:
        names = ("IDF1", "IDP", "IDR", "IDTP", "IDFN", "IDFP")
        return _under_names(self, names)


@dataclass(frozen=True)
class TrackingMetrics:
    """The three families of one sequence (`evaluate`)."""

    hota: Hota
    clear: Clear
    identity: Identity

    def summary(self) -> dict[str, float]:
        """All the reported values, under TrackEval's names."""
        return {**self.hota.summary(), **self.clear.summary(), **self.identity.summary()}


@dataclass(frozen=True)
class _Sequence:
    """Ids renumbered 0..n-1 per side: gt, pred: int64 [N_t] per frame; similarity: float64
    [G_t, P_t] per frame; gt_count int [G_ids], pred_count int [P_ids]: detections per id."""

    gt: list[np.ndarray]
    pred: list[np.ndarray]
    similarity: list[np.ndarray]
    gt_count: np.ndarray
    pred_count: np.ndarray


def evaluate(gt: Sequence[Frame], pred: Sequence[Frame], by: str = "box", threshold: float = 0.5) -> TrackingMetrics:
    """HOTA, CLEAR and identity metrics of predictions against ground truth, frame by frame.

    by: "box" (box IoU) or "mask" (mask IoU); threshold: the similarity a CLEAR or identity
    match needs (TrackEval's default 0.5). The two sequences must have as many frames.
    """
    seq = _sequence(gt, pred, by)
    return TrackingMetrics(_hota(seq), _clear(seq, threshold), _identity(seq, threshold))


def _sequence(gt: Sequence[Frame], pred: Sequence[Frame], by: str) -> _Sequence:
    if len(gt) != len(pred):
        raise ValueError(f"{len(gt)} ground-truth frames but {len(pred)} predicted frames")
    if by not in ("box", "mask"):
        raise ValueError(f"by must be 'box' or 'mask', got {by!r}")
    similarity = [_similarity(g, p, by) for g, p in zip(gt, pred)]
    gt_ids, gt_count = _renumber([np.asarray(f.ids, dtype=np.int64).reshape(-1) for f in gt])
    pred_ids, pred_count = _renumber([np.asarray(f.ids, dtype=np.int64).reshape(-1) for f in pred])
    return _Sequence(gt_ids, pred_ids, similarity, gt_count, pred_count)


def _similarity(gt: Frame, pred: Frame, by: str) -> np.ndarray:
    if by == "mask":
        return mask_iou(gt.masks, pred.masks)
    return box_iou(np.asarray(gt.boxes).reshape(-1, 4), np.asarray(pred.boxes).reshape(-1, 4))


def _renumber(ids: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Ids per frame -> indices into the sorted distinct ids, and how many frames hold each id."""
    distinct, flat = np.unique(np.concatenate(ids) if ids else np.zeros(0, np.int64), return_inverse=True)
    ends = np.cumsum([len(f) for f in ids])
    per_frame = np.split(flat, ends[:-1])
    for frame in per_frame:
        if len(np.unique(frame)) != len(frame):
            raise ValueError("an id appears twice in one frame")
    return per_frame, np.bincount(flat, minlength=len(distinct))


def _hota(seq: _Sequence) -> Hota:
    """HOTA at every alpha (TrackEval's HOTA.eval_sequence)."""
    n_alpha = len(ALPHAS)
    tp, fn, fp, loc = (np.zeros(n_alpha) for _ in range(4))
    matches = np.zeros((n_alpha, len(seq.gt_count), len(seq.pred_count)))
    alignment = _global_alignment(seq)
    for gt, pred, sim in zip(seq.gt, seq.pred, seq.similarity):
        if not len(gt) or not len(pred):
            fn += len(gt)
            fp += len(pred)
            continue
        rows, cols = linear_sum_assignment(alignment[gt[:, None], pred[None, :]] * sim, maximize=True)
        matched = sim[rows, cols][None, :] >= ALPHAS[:, None] - EPS  # [alpha, pairs]
        count = matched.sum(axis=1)
        tp += count
        fn += len(gt) - count
        fp += len(pred) - count
        loc += (matched * sim[rows, cols][None, :]).sum(axis=1)
        alpha, pair = np.nonzero(matched)
        np.add.at(matches, (alpha, gt[rows][pair], pred[cols][pair]), 1)
    if not seq.pred_count.sum() or not seq.gt_count.sum():  # TrackEval's early exits: LocA is 1
        loc, tp_loc = np.ones(n_alpha), np.ones(n_alpha)
    else:
        tp_loc = tp
    return _hota_scores(tp, fn, fp, np.maximum(1e-10, loc) / np.maximum(1e-10, tp_loc), matches, seq)


def _global_alignment(seq: _Sequence) -> np.ndarray:
    """float64 [G_ids, P_ids]: each id pair's soft Jaccard over the sequence (TrackEval's
    global_alignment_score), from per-frame similarities normalised by row and column sums."""
    potential = np.zeros((len(seq.gt_count), len(seq.pred_count)))
    for gt, pred, sim in zip(seq.gt, seq.pred, seq.similarity):
        if not len(gt) or not len(pred):
            continue
        denominator = sim.sum(axis=0)[None, :] + sim.sum(axis=1)[:, None] - sim
        normalised = np.divide(sim, denominator, out=np.zeros_like(sim), where=denominator > EPS)
        potential[gt[:, None], pred[None, :]] += normalised
    union = seq.gt_count[:, None] + seq.pred_count[None, :] - potential
    return np.divide(potential, union, out=np.zeros_like(potential), where=union > 0)


def _hota_scores(tp: np.ndarray, fn: np.ndarray, fp: np.ndarray, loca: np.ndarray, matches: np.ndarray,
                 seq: _Sequence) -> Hota:
    """Hota from per-alpha counts and LocA (float [19]) and matched frames per id pair
    (matches float [19, G_ids, P_ids]), as TrackEval's final fields."""
    gt_count, pred_count = seq.gt_count[None, :, None], seq.pred_count[None, None, :]
    denominator = np.maximum(1, tp)

    def association(base) -> np.ndarray:
        return (matches * matches / np.maximum(1, base)).sum(axis=(1, 2)) / denominator

    deta = tp / np.maximum(1, tp + fn + fp)
    assa = association(gt_count + pred_count - matches)
    return Hota(hota=np.sqrt(deta * assa), deta=deta, assa=assa, loca=loca,
                detre=tp / np.maximum(1, tp + fn), detpr=tp / np.maximum(1, tp + fp),
                assre=association(gt_count), asspr=association(pred_count))


def _clear(seq: _Sequence, threshold: float = 0.5) -> Clear:
    """CLEAR MOT (TrackEval's CLEAR.eval_sequence): a match needs similarity >= threshold, and a
    ground-truth object keeps its previous frame's prediction when it can."""
    tp = fn = fp = idsw = 0
    motp_sum = 0.0
    n_gt = len(seq.gt_count)
    seen, matched_frames, fragments = np.zeros(n_gt), np.zeros(n_gt), np.zeros(n_gt)
    last_pred = np.full(n_gt, -1)  # latest prediction matched to each gt id, ever: for switches
    previous = np.full(n_gt, -1)  # prediction matched in the previous frame with both sides present
    for gt, pred, sim in zip(seq.gt, seq.pred, seq.similarity):
        seen[gt] += 1
        if not len(gt) or not len(pred):
            fn += len(gt)
            fp += len(pred)
            continue
        rows, cols = _clear_matches(gt, pred, sim, previous, threshold)
        gt_m, pred_m = gt[rows], pred[cols]
        idsw += int(((last_pred[gt_m] >= 0) & (last_pred[gt_m] != pred_m)).sum())
        matched_frames[gt_m] += 1
        last_pred[gt_m] = pred_m
        now = np.full(n_gt, -1)
        now[gt_m] = pred_m
        fragments += (previous < 0) & (now >= 0)
        previous = now
        tp += len(rows)
        fn += len(gt) - len(rows)
        fp += len(pred) - len(rows)
        motp_sum += float(sim[rows, cols].sum())
    if not seq.pred_count.sum() or not seq.gt_count.sum():  # TrackEval's early exits: MOTA stays 0
        return Clear(mota=0.0, motp=0.0, tp=0, fn=fn, fp=fp, idsw=0, frag=0, mt=0, pt=0, ml=n_gt)
    ratio = matched_frames[seen > 0] / seen[seen > 0]
    mt, pt = int((ratio > 0.8).sum()), int((ratio >= 0.2).sum() - (ratio > 0.8).sum())
    return Clear(mota=(tp - fp - idsw) / max(1, tp + fn), motp=motp_sum / max(1, tp), tp=tp, fn=fn, fp=fp,
                 idsw=idsw, frag=int((fragments[fragments > 0] - 1).sum()), mt=mt, pt=pt, ml=n_gt - mt - pt)


def _clear_matches(gt: np.ndarray, pred: np.ndarray, sim: np.ndarray, previous: np.ndarray,
                   threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Matched (rows, cols) of one frame (gt ids int [G], pred ids int [P], sim float [G, P]):
    the pairs matched in the previous frame (`previous`: pred id per gt id, -1 for none) first,
    then the highest total similarity, among pairs with sim >= threshold."""
    score = 1000.0 * (pred[None, :] == previous[gt][:, None]) + sim
    score[sim < threshold - EPS] = 0
    rows, cols = linear_sum_assignment(score, maximize=True)
    keep = score[rows, cols] > EPS
    return rows[keep], cols[keep]


def _identity(seq: _Sequence, threshold: float = 0.5) -> Identity:
    """IDF1, IDP, IDR: the one-to-one gt-id to predicted-id matching with the most frames in which
    the pair overlaps with similarity >= threshold (TrackEval's Identity.eval_sequence)."""
    overlap = np.zeros((len(seq.gt_count), len(seq.pred_count)))
    for gt, pred, sim in zip(seq.gt, seq.pred, seq.similarity):
        rows, cols = np.nonzero(sim >= threshold)
        np.add.at(overlap, (gt[rows], pred[cols]), 1)
    rows, cols = linear_sum_assignment(overlap, maximize=True)
    idtp = int(overlap[rows, cols].sum())
    n_gt, n_pred = int(seq.gt_count.sum()), int(seq.pred_count.sum())
    idfn, idfp = n_gt - idtp, n_pred - idtp
    return Identity(idf1=idtp / max(1.0, idtp + 0.5 * idfp + 0.5 * idfn), idp=idtp / max(1, idtp + idfp),
                    idr=idtp / max(1, idtp + idfn), idtp=idtp, idfn=idfn, idfp=idfp)
