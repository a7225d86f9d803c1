"""Hugging Face helpers: a tiny offline Qwen2.5-VL and chat / coordinate-frame utilities.

Importing this package imports neither torch nor transformers; the submodules do, lazily.
"""
