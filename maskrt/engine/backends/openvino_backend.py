"""The OpenVINO backend: the `cpu` engine's three compiled stages plus maskrt's CPU kernels between them."""

from __future__ import annotations

import concurrent.futures
import contextlib
import os
import queue
import re
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ...artifact import CPU_STAGES, Manifest
from ...artifact.stages import Port, check_stage
from ...errors import EngineError
from ...model import DetectionParams, InputPolicy, RawDetections, RPNParams
from ...model.network import Detector
from ...model.rpn import cell_anchors, warm_up as warm_up_proposals
from ...kernels import glue_threads
from ...kernels.warmup import warm_up_cpu
from ...model.transform import warm_up as warm_up_preprocessing
from .torch_backend import uint8_chw


_CORE = None
_CORE_LOCK = threading.Lock()


def shared_core():
    """The process's one ov.Core, made on first use and never destroyed.

    OpenVINO's CPU plugin (2026.4, measured) gives the thread that compiles a model an
    alternate signal stack owned by the Core, and restores the previous one when that Core is
    destroyed. Cores destroyed out of order (two Segmenters dropped first-made-first) leave the
    thread's alternate stack pointing at freed memory, and the next signal (SIGTERM, Ctrl-C),
    which Python's handlers take on that stack, kills the process with SIGSEGV instead of
    letting it clean up. One Core for the process never frees its stack."""
    global _CORE
    with _CORE_LOCK:
        if _CORE is None:
            import openvino as ov

            _CORE = ov.Core()
        return _CORE


MAX_INPUT_BUFFERS = 4  # a stage's reused input buffers (padded shapes), oldest dropped first


def row_bucket(n: int, full: int | None = None) -> int:
    """Number of rows a stage input with n rows is padded to: n up to 8, then the next multiple of
    a quarter of n's power of two (9 -> 10, 17 -> 20, 1000 -> 1024): at most 25% extra rows, about
    four shapes per octave (36 for 1..1000). With `full` (the most rows one image can bring: the
    RPN's post-NMS top-n for the box head, detections per image for the mask head), a multiple
    of it is used when smaller, so the common full-size case (100 detections) is not padded.

    OpenVINO's CPU plugin prepares and caches kernels for every new input shape (~0.35 MB and
    ~5 ms per box-head shape, ~1.3 MB and ~20 ms per mask-head shape of the bundled model), so an
    unpadded stream, whose RoI and detection counts vary frame to frame, keeps growing memory and
    pays a latency spike whenever a count is new."""
    if n <= 8:
        return n
    step = 1 << (n.bit_length() - 3)
    bucket = -(-n // step) * step
    return min(bucket, -(-n // full) * full) if full else bucket


def compute_precision(precision: str, capabilities) -> str:
    """OpenVINO's INFERENCE_PRECISION_HINT for an engine of `precision` on a CPU with these
    OPTIMIZATION_CAPABILITIES: fp32 engines run in f32 (exact parity); fp16 engines in bf16 where
    the CPU has it natively (AVX512_BF16 or AMX: "BF16" listed), in f32 elsewhere (fp16 weights
    are widened when the model is compiled, so such an engine computes what an fp32 one does).
    int8 engines: their quantized layers (FakeQuantize around them in the IR) run in u8/i8 on
    every x86 CPU whatever the hint; the layers kept in float run in f32, so that an int8 engine
    computes the same on AVX2 and AVX-512+BF16 machines."""
    return "bf16" if precision == "fp16" and "BF16" in capabilities else "f32"


def read_stages(engine_dir: Path, manifest: Manifest, models: dict | None = None) -> dict:
    """{stage: openvino.Model}: each stage file read (or `models`' own) and its inputs and outputs
    checked against what the manifest declares (artifact.stages); any problem, OpenVINO's own
    errors included, is one EngineError line naming the stage."""
    core, out = shared_core(), {}
    names = models or manifest.stages
    for stage in sorted(names, key=lambda s: CPU_STAGES.index(s) if s in CPU_STAGES else len(CPU_STAGES)):
        file = manifest.stages.get(stage, "in memory")
        with _stage_errors(engine_dir, stage, manifest):
            model = models[stage] if models else core.read_model(str(engine_dir / file))
        check_stage(f"{engine_dir} ({file})", stage, manifest.config, _ports(model.inputs), _ports(model.outputs))
        out[stage] = model
    return out


def _ports(ports) -> list[Port]:
    """OpenVINO ports as artifact Ports (a dimension that is not static: None)."""
    def dims(port):
        shape = port.get_partial_shape()
        if shape.rank.is_dynamic:
            return (None,) * 99  # no rank at all: never a match
        return tuple(d.get_length() if d.is_static else None for d in shape)

    return [Port(port.get_any_name() if port.get_names() else "", dims(port), port.get_element_type().to_string())
            for port in ports]


@contextlib.contextmanager
def _stage_errors(engine_dir: Path, stage: str, manifest: Manifest):
    """OpenVINO's exceptions (a truncated or garbled file, a graph it cannot compile) as one line."""
    try:
        yield
    except RuntimeError as exc:
        file = manifest.stages.get(stage, "in memory")
        raise EngineError(f"{engine_dir}: stage {stage} ({file}) cannot be loaded by OpenVINO: "
                          f"{openvino_reason(exc)}") from None


# OpenVINO prefixes its message with where it was raised and re-raised, a line each:
# "Exception from src/inference/src/cpp/core.cpp:84:", "Check '...' failed at src/.../node.cpp:345:".
_OPENVINO_LOCATION = re.compile(r"^(Exception from \S+:\d+:|Check '.*' failed at \S+:\d+:)$")


def openvino_reason(exc: BaseException) -> str:
    """The first line of an OpenVINO exception that says what is wrong (not where it was raised):
    "Incorrect weights in bin file!" rather than "Exception from src/inference/src/cpp/core.cpp:84:"."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return next((line for line in lines if not _OPENVINO_LOCATION.match(line)),
                lines[0] if lines else type(exc).__name__)


CHANNELS_LAST_STAGES = ("box", "mask")  # their input is RoIAlign's output, channels_last: taken as NHWC


def channels_last_input(model):
    """A copy of the openvino.Model `model` whose one input Tensor[N, C, H, W] is given as NHWC
    (PrePostProcessor: OpenVINO transposes it inside the graph, into its own layout anyway), so
    that RoIAlign's channels_last output is fed as it lies in memory: no transposing copy on the host."""
    import openvino as ov

    ppp = ov.preprocess.PrePostProcessor(model.clone())
    ppp.input().tensor().set_layout(ov.Layout("NHWC"))
    ppp.input().model().set_layout(ov.Layout("NCHW"))
    return ppp.build()


class _Stage:
    """One compiled model; called with torch tensors, returns torch tensors: copies, or with
    copy_outputs=False views of OpenVINO's output buffers, valid until the stage's next call.
    Inputs are shared with OpenVINO for the call, not copied, and so are its outputs (OpenVINO's
    own infer would copy each into a fresh array by default).

    With `full_rows` (a callable giving `row_bucket`'s `full`), the input's first dimension
    (RoIs, detections) is zero-padded to `row_bucket(n, full_rows())` and the outputs cut back to
    n rows; the heads treat rows independently, so the padding changes no real row's result.

    channels_last: the compiled model takes its input as NHWC (channels_last_input); it is called
    with Tensor[N, C, H, W] as usual, and `input_view` lends a buffer to write that input into."""

    def __init__(self, compiled, empty_outputs=None, full_rows: Callable[[], int] | None = None,
                 copy_outputs: bool = True, channels_last: bool = False):
        self.request = compiled.create_infer_request()
        self.num_outputs = len(compiled.outputs)
        self.empty_outputs = empty_outputs
        self.full_rows = full_rows
        self.copy_outputs = copy_outputs
        self.channels_last = channels_last
        self.lends = channels_last and compiled.input(0).get_element_type().get_type_name() == "f32"
        self._buffers: dict[tuple[int, ...], np.ndarray] = {}  # NHWC input buffers by shape, reused
        self._lent: np.ndarray | None = None

    def input_view(self, n: int, shape: tuple[int, int, int]) -> torch.Tensor | None:
        """A float32 Tensor[n, C, H, W] (shape = (C, H, W)), channels_last, over this stage's own
        input buffer: what is written into it is the next call's input without a copy (call the
        stage with this very tensor). The buffer's padding rows are zeroed; buffers are kept per
        padded shape and reused, so no call allocates (and page-faults) a fresh one. None where the
        stage does not take float32 channels-last input, or for n == 0."""
        if not self.lends or n == 0:
            return None
        c, h, w = shape
        key = (self._rows(n), h, w, c)
        if key not in self._buffers:
            if len(self._buffers) >= MAX_INPUT_BUFFERS:
                self._buffers.pop(next(iter(self._buffers)))
            self._buffers[key] = np.zeros(key, np.float32)
        buffer = self._buffers[key]
        buffer[n:] = 0
        self._lent = buffer
        return torch.from_numpy(buffer[:n]).permute(0, 3, 1, 2)

    def __call__(self, x: torch.Tensor):
        n = x.shape[0]
        lent, self._lent = self._lent, None
        if n == 0 and self.empty_outputs is not None:
            return self.empty_outputs()
        if lent is not None and x.data_ptr() == lent.ctypes.data and n <= lent.shape[0]:
            array = lent  # written in place by the producer (input_view)
        else:
            array = self._padded(np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy() if self.channels_last else x.numpy()))
        # share_outputs: infer's returned dict then holds views, not copies of every output (the dense
        # stage's FPN features, ~90 MB at 800x1344); the outputs are read below, from the request
        self.request.infer([array], share_inputs=True, share_outputs=True)
        views = (self.request.get_output_tensor(i).data[:n] for i in range(self.num_outputs))
        outs = tuple(torch.from_numpy(v.copy() if self.copy_outputs else v) for v in views)
        return outs if self.num_outputs > 1 else outs[0]

    def _rows(self, n: int) -> int:
        """The rows an input of n rows is padded to: its row bucket (n without full_rows)."""
        return row_bucket(n, self.full_rows()) if self.full_rows else n

    def _padded(self, array: np.ndarray) -> np.ndarray:
        """array with its first dimension zero-padded to the row bucket (as is without full_rows)."""
        n = array.shape[0]
        rows = self._rows(n)
        if rows == n:
            return array
        padded = np.zeros((rows,) + array.shape[1:], dtype=array.dtype)
        padded[:n] = array
        return padded


def warm_up_glue() -> None:
    """Every numba kernel of a CPU engine's glue compiled for a frame's argument types: the ops'
    (RoIAlign, NMS, paste), preprocessing's and the proposals' picking pass. Once per process."""
    warm_up_cpu()
    warm_up_preprocessing()
    warm_up_proposals()


class OpenVINOBackend:
    """Runs a `cpu`-target engine directory. Threads: OpenVINO and torch share `num_threads` cores.
    min_size / max_size override the manifest's input-size policy (the dense stage is dynamic
    in height and width).

    requests: how many frames may be inside the engine at once. 1 (the default): one infer
    request per stage on all `num_threads` threads (OpenVINO's LATENCY hint): one call is as fast
    as it can be. N > 1: the stages are compiled for N streams of num_threads / N threads each
    (the THROUGHPUT hint) and N detectors (each with its own infer requests) serve N callers at
    once, so one frame's dense stage runs while another's glue and heads run: more frames per
    second from several callers (the stream's infer workers), a slower single call.
    The glue inside a call (RoIAlign's channel blocks, ...) may use num_threads // requests threads
    (`kernels.glue_threads.limited_to`): the call's share of the cores, its stages idle meanwhile.
    infer() may be called from several threads: each call takes a free detector (waiting for one
    when all N are busy); `detector` is the first, whose settings (thresholds, proposals) the
    others copy before each call."""

    name = "openvino"

    def __init__(self, engine_dir: str | Path, manifest: Manifest, num_threads: int | None = None,
                 min_size: int | None = None, max_size: int | None = None, models: dict | None = None,
                 requests: int = 1):
        """models: {stage: openvino.Model} to compile instead of the engine directory's files
        (the int8 builder runs the fp32 stages this way to capture calibration inputs)."""
        self.engine_dir = Path(engine_dir)
        self.manifest = manifest
        self.num_threads = num_threads or os.cpu_count() or 1
        self.requests = max(1, int(requests))
        # the glue's threads inside a call: this call's share of the cores (its stages are idle then)
        self.glue_workers = max(1, self.num_threads // self.requests)
        core = shared_core()
        # "f32" or "bf16": what OpenVINO computes in on this CPU
        capabilities = core.get_property("CPU", "OPTIMIZATION_CAPABILITIES")
        self.compute_precision = compute_precision(manifest.precision, capabilities)
        config = {"INFERENCE_NUM_THREADS": self.num_threads, "INFERENCE_PRECISION_HINT": self.compute_precision,
                  **stream_config(self.requests, self.num_threads)}
        compiled = {}
        self.channels_last = tuple(CHANNELS_LAST_STAGES)  # stages compiled to take NHWC input
        # the glue's numba kernels compiled (or loaded from numba's cache) while OpenVINO compiles the
        # stages, not during the first frame: ~0.6 s from the cache, ~4.8 s with it empty
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="maskrt-warmup") as pool:
            warm = pool.submit(warm_up_glue)
            for stage, model in read_stages(self.engine_dir, manifest, models).items():
                with _stage_errors(self.engine_dir, stage, manifest):
                    if stage in self.channels_last:
                        model = channels_last_input(model)
                    compiled[stage] = core.compile_model(model, "CPU", config)
            warm.result()
        self.compiled = compiled
        self.policy = InputPolicy.from_manifest(manifest.input_policy, min_size, max_size)
        self.detectors = [self._new_detector() for _ in range(self.requests)]
        self.detector = self.detectors[0]
        self._free: queue.SimpleQueue = queue.SimpleQueue()
        for detector in self.detectors:
            self._free.put(detector)

    def _new_detector(self) -> Detector:
        """A Detector on its own infer requests of the compiled stages."""
        cfg = self.manifest.config
        k, regressions = cfg.num_classes, 1 if cfg.box_agnostic else cfg.num_classes
        # The dense stage's outputs (FPN features, ~90 MB at 800x1344) are used in place: they are
        # read only within the same detect() call, before this request runs again.
        # So are the heads' outputs: the glue takes what it keeps out of them (softmax, the picked
        # deltas, each detection's own-class mask: R50's 100 x 91 x 28 x 28 logits are 28.5 MB) at once.
        dense = _Stage(self.compiled["dense"], copy_outputs=False)
        box = _Stage(self.compiled["box"], lambda: (torch.zeros(0, k), torch.zeros(0, 4 * regressions)),
                     full_rows=lambda: self.detector.proposals.params.post_nms_top_n,
                     channels_last="box" in self.channels_last, copy_outputs=False)
        mask = _Stage(self.compiled["mask"], full_rows=lambda: self.detector.heads.params.detections_per_img,
                      channels_last="mask" in self.channels_last, copy_outputs=False)
        th = self.manifest.thresholds
        return Detector(dense, box, mask, cell_anchors(cfg.numerics), cfg, self.policy,
                        RPNParams(**th["rpn"]), DetectionParams(**th["detection"]))

    def infer(self, images: list[np.ndarray]) -> list[RawDetections]:
        detector = self._free.get()
        try:
            if detector is not self.detector:
                detector.proposals.params = self.detector.proposals.params
                detector.heads.params = self.detector.heads.params
            with first_inference_alone(), glue_threads.single_threaded_torch(), \
                    glue_threads.limited_to(self.glue_workers):
                return detector.detect([uint8_chw(img) for img in images])
        finally:
            self._free.put(detector)


_FIRST_INFERENCE_LOCK = threading.Lock()
_FIRST_INFERENCE_DONE = threading.Event()


@contextlib.contextmanager
def first_inference_alone():
    """The process's first OpenVINO inference runs alone; later ones run concurrently.

    OpenVINO's Python bindings initialise function-local statics on first use, and one such
    initialiser reaches pybind11's numpy API, whose one-time set-up releases and retakes the GIL
    (gil_safe_call_once_and_store). Two threads making their first inference at once (the
    stream's two infer workers) deadlocked there: one held the static's guard waiting for the
    GIL, the other held the GIL waiting for the guard (seen with gdb in a hung `maskrt run`).
    Once one inference has completed, the statics exist and the GIL is no longer released."""
    if _FIRST_INFERENCE_DONE.is_set():
        yield
        return
    with _FIRST_INFERENCE_LOCK:
        yield
        _FIRST_INFERENCE_DONE.set()


def stream_config(requests: int, threads: int) -> dict:
    """OpenVINO CPU properties for `requests` concurrent frames on `threads` threads: one
    stream (LATENCY) for 1, else `requests` streams sharing the threads (THROUGHPUT)."""
    if requests == 1:
        return {"PERFORMANCE_HINT": "LATENCY"}
    return {"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": min(requests, threads)}
