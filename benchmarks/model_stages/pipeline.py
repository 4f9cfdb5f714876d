"""The inference pipeline cut into its stages, each a zero-argument callable on fixed inputs.

Every stage's inputs are the previous stage's outputs, computed once here, so each benchmark
times one stage alone: preprocess -> dense (backbone + FPN + RPN head) -> rpn (proposals) ->
box (RoIAlign 7x7 + box head + decode/NMS) -> mask (RoIAlign 14x14 + mask head) -> paste
(full-size masks) -> render (blend + boxes + labels) -> encode (H.264, one frame).
"""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import torch

from maskrt import kernels
from maskrt.engine.backends.torch_backend import to_float_chw
from maskrt.engine.detections import Detections
from maskrt.engine.stream.render import render_frame
from maskrt.model import MaskRCNN
from maskrt.model.boxes import scale_boxes
from maskrt.model.heads import infer_spatial_scales
from maskrt.model.transform import preprocess


class StagePipeline:
    """Intermediate results of one image through `model`, and a callable per stage."""

    def __init__(self, model: MaskRCNN, image: np.ndarray, classes: list[str]):
        self.model, self.image, self.classes = model, image, classes
        self.detector = model.detector
        self.heads = self.detector.heads
        with torch.inference_mode():
            self._run_once()

    def _run_once(self) -> None:
        self.tensor = to_float_chw(self.image)
        self.batch, self.sizes = self.preprocess()
        outputs = self.dense()
        n = self.detector.num_rpn_levels
        self.features = list(outputs[:-2 * n])
        self.logits, self.deltas = list(outputs[-2 * n:-n]), list(outputs[-n:])
        self.scales = infer_spatial_scales(self.features, self.sizes)
        self.proposals = self.rpn()
        self.boxes, self.scores, self.labels = self.box()[0]
        self.mask_probs = self.mask()[0]
        original = self.image.shape[:2]
        self.image_boxes = scale_boxes(self.boxes, self.sizes[0], original)
        self.detections = Detections.from_tensors(self.image_boxes, self.scores, self.labels, self.mask_probs,
                                                  original)
        _ = self.detections.masks  # pasted once, so render times rendering only

    @property
    def num_detections(self) -> int:
        return int(self.boxes.shape[0])

    def preprocess(self):
        return preprocess([to_float_chw(self.image)], self.detector.policy)

    def dense(self):
        with torch.inference_mode():
            return self.model.dense(self.batch)

    def rpn(self):
        with torch.inference_mode():
            return self.detector.proposals(self.logits, self.deltas, tuple(self.batch.shape[-2:]), self.sizes)

    def box(self):
        """RoIAlign over the proposals, box head + predictor, per-class decode, threshold, NMS."""
        heads = self.heads
        with torch.inference_mode():
            pooled = heads._pool(self.features, self.proposals, self.scales, heads.box_pool)
            logits, deltas = heads.box_fn(pooled)
            counts = [p.shape[0] for p in self.proposals]
            return [heads._postprocess(lg, dl, p, size) for lg, dl, p, size in
                    zip(logits.split(counts), deltas.split(counts), self.proposals, self.sizes)]

    def mask(self):
        """RoIAlign over the detections, mask head + predictor, own-class sigmoid."""
        with torch.inference_mode():
            return self.heads._masks(self.features, [self.boxes], [self.labels], self.scales)

    def paste(self, impl: str):
        h, w = self.image.shape[:2]
        return kernels.paste(self.mask_probs, self.image_boxes, h, w, 0.5, impl=impl)

    def paste_id_map(self, impl: str):
        h, w = self.image.shape[:2]
        return kernels.paste_id_map(self.mask_probs, self.image_boxes, h, w, 0.5, self.scores, impl=impl)

    def render(self):
        return render_frame(self.image, self.detections, self.classes)

    def end_to_end(self):
        """Image -> detections with full-size masks, as the torch backend + Detections.masks run it."""
        raw = self.model.detect([to_float_chw(self.image)])[0]
        h, w = raw.image_size
        return kernels.paste(raw.mask_probs, raw.boxes, h, w, 0.5)


class FrameEncoder:
    """H.264 (libx264, yuv420p, crf 23, preset veryfast: VideoSink's settings) into an in-memory
    MP4. Cycles through a few shifted copies of the frame, so every frame has motion to code."""

    def __init__(self, frame: np.ndarray, fps: int = 30, distinct: int = 8):
        h, w = frame.shape[0] // 2 * 2, frame.shape[1] // 2 * 2
        base = np.ascontiguousarray(frame[:h, :w])
        self.frames = [np.ascontiguousarray(np.roll(base, 8 * k, axis=1)) for k in range(distinct)]
        self.container = av.open(io.BytesIO(), mode="w", format="mp4")
        self.stream = self.container.add_stream("libx264", rate=Fraction(fps))
        self.stream.width, self.stream.height, self.stream.pix_fmt = w, h, "yuv420p"
        self.stream.options = {"crf": "23", "preset": "veryfast"}
        self.pts = 0

    def encode_one(self) -> int:
        """Convert and encode the next frame, mux whatever packets come out; returns their count."""
        frame = av.VideoFrame.from_ndarray(self.frames[self.pts % len(self.frames)], format="rgb24")
        frame.pts = self.pts
        self.pts += 1
        packets = self.stream.encode(frame)
        for packet in packets:
            self.container.mux(packet)
        return len(packets)

    def close(self) -> None:
        for packet in self.stream.encode(None):
            self.container.mux(packet)
        self.container.close()
