"""Datasets: one sample type, one loader per source, the synthetic set beside them.

>>> from segzero_env.datasets import load
>>> ds = load("shapes", split="val", size=4)
>>> len(ds)
4
"""

from segzero_env.datasets.base import SegDataset, dataset_names, load, register_dataset

register_dataset("shapes", "segzero_env.datasets.shapes:load_shapes")

__all__ = ["SegDataset", "dataset_names", "load", "register_dataset"]
