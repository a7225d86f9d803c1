"""Segmenters behind one protocol; heavy backends import torch only when built."""

from segzero_env.segmenters.base import Segmenter, SegmenterBase, SegmentRequest
from segzero_env.segmenters.registry import make_segmenter, register_segmenter, segmenter_names

__all__ = ["SegmentRequest", "Segmenter", "SegmenterBase", "make_segmenter", "register_segmenter", "segmenter_names"]
