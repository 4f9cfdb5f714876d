"""Streaming runtime: sources -> threaded pipeline (decode, preprocess, infer, postprocess,
render, encode) -> sinks, with per-stage statistics. See pipeline.py for the policy (offline vs
real time, stopping) and sources.py / sinks.py for what goes in and out."""

from .api import Stream
from .pipeline import Pipeline
from .render import render_frame
from .sinks import CocoResultsSink, JsonLinesSink, PngFolderSink, RecordsSink, Sink, VideoSink, pad_to_even
from ..sources import ArraySource, Frame, FrameSource, ImageSource, describe_kind, open_source
from .stats import STAGES, StreamStats
from .steps import FrameStep
from .work import Work

__all__ = ["STAGES", "ArraySource", "CocoResultsSink", "Frame", "FrameSource", "FrameStep", "ImageSource", "JsonLinesSink",
           "Pipeline", "PngFolderSink", "RecordsSink", "Sink", "Stream", "StreamStats", "VideoSink", "Work", "describe_kind",
           "open_source", "pad_to_even", "render_frame"]
