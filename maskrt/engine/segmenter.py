"""Segmenter: the user-facing callable. image(s) in, Detections out."""

from __future__ import annotations

from collections.abc import Sequence

from .detections import Detections
from .images import as_rgb_uint8


class Segmenter:
    """Runs a backend on RGB images.

    seg(image) -> Detections; seg([img, ...]) -> list[Detections]. `image` is np.ndarray
    [H, W, 3] uint8 RGB (grayscale, RGBA and PIL images are converted; other dtypes refused).
    """

    def __init__(self, backend, classes: list[str], source: str = "", batch_size: int = 1):
        self.backend = backend
        self.classes = list(classes)
        self.source = source
        self.batch_size = max(1, int(batch_size))

    def __repr__(self) -> str:
        return f"Segmenter(backend={self.backend.name!r}, classes={len(self.classes)}, source={self.source!r})"

    def __call__(self, image):
        if isinstance(image, (list, tuple)):
            return self.predict_batch(image)
        return self.predict_batch([image])[0]

    def predict_batch(self, images: Sequence) -> list[Detections]:
        """Detections for each image, run through the backend in groups of `batch_size`."""
        rgb = [as_rgb_uint8(img) for img in images]
        results: list[Detections] = []
        for start in range(0, len(rgb), self.batch_size):
            for raw in self.backend.infer(rgb[start:start + self.batch_size]):
                results.append(Detections.from_raw(raw))
        return results

    def stream(self, source, realtime: bool | None = None, *, batch_size: int | None = None,
               min_score: float | None = None, max_frames: int | None = None, **options):
        """Segment a stream of frames on pipeline threads; iterate the result for (frame, detections).

        source: a video file, an image, a folder or glob of images, a webcam index (int or digit
        string), an rtsp/http URL, or arrays (an iterable of images, or [N, H, W, C]).
        realtime: None -> True for cameras and URLs, False otherwise. Offline, every frame is
        processed in order; in real time only the newest frame is kept when inference falls
        behind (the returned Stream counts `dropped` frames). frame: np.ndarray [H, W, 3] uint8
        RGB; detections: Detections at the frame's size. batch_size defaults to self.batch_size.
        min_score: report only detections scoring at least this (after the per-frame steps; the
        model's own threshold is load()'s score_threshold). `options`: steps=[FrameStep, ...]
        (per-frame steps: maskrt.engine.stream.steps), sinks=[...], show_fps, and URL options
        (see maskrt.engine.stream).

        Tracking: track=True gives every detection a track id (`Detections.track_ids`, ByteTrack:
        maskrt.engine.stream.tracking); tracker= a YAML path, a mapping or a TrackerConfig
        (Ultralytics' bytetrack.yaml keys); match="box" or "mask" (associate by box or by mask
        IoU); interval=N runs the engine on every N-th frame and carries the tracks over the
        others (`Detections.propagated`), interval="auto" (real time) as often as the machine
        allows. The tracker sees every detection the model keeps: load the model with
        score_threshold <= the tracker's track_low_thresh (0.1; load()'s default 0.05 is) and
        report with min_score.
        """
        from .stream import Stream

        return Stream(self, source, realtime, batch_size=batch_size, min_score=min_score,
                      max_frames=max_frames, **options)
