"""Datasets: one sample type, one loader per source, the synthetic set beside them.

>>> from segzero_env.datasets import load
>>> ds = load("shapes", split="val", size=4)
>>> len(ds)
4
"""

from segzero_env.datasets.base import SegDataset, dataset_names, load, register_dataset

register_dataset("shapes", "segzero_env.datasets.shapes:load_shapes")
register_dataset("reasonseg", "segzero_env.datasets.reasonseg:load_reasonseg")
register_dataset("reasonseg-hf", "segzero_env.datasets.reasonseg_hf:load_reasonseg_hf")
register_dataset("refcoco", "segzero_env.datasets.refcoco:load_refcoco")
register_dataset("refcoco+", "segzero_env.datasets.refcoco:load_refcoco_plus")
register_dataset("refcocog", "segzero_env.datasets.refcoco:load_refcocog")
register_dataset("grefcoco", "segzero_env.datasets.grefcoco:load_grefcoco")
register_dataset("segzero-train", "segzero_env.datasets.segzero_train:load_segzero_train")

__all__ = ["SegDataset", "dataset_names", "load", "register_dataset"]
