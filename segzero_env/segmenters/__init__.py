"""Segmenters behind one protocol; heavy backends import torch only when built."""

from segzero_env.segmenters.base import SegmentationOutput, Segmenter, SegmenterBase, SegmentRequest
from segzero_env.segmenters.registry import make_segmenter, register_segmenter, segmenter_names

__all__ = [
    "SegmentRequest",
    "SegmentationOutput",
    "Segmenter",
    "SegmenterBase",
    "make_segmenter",
    "register_segmenter",
    "segmenter_names",
]
