"""What each dataset source expects on disk, in one line each, for messages about empty or wrong folders.

>>> print(empty_split_error("reasonseg", "val", "/data/rs/val"))
/data/rs/val: holds no reasonseg samples for split 'val'; expected layout: <root>/{train,val,test}/<name>.jpg ...
"""

from __future__ import annotations

from segzero_env.datasets.errors import DatasetError

EXPECTED_LAYOUTS: dict[str, str] = {
    "reasonseg": "<root>/{train,val,test}/<name>.jpg beside <name>.json (LISA's ReasonSeg), with data_root=<root>",
    "reasonseg-hf": "a save_to_disk folder or parquet files (e.g. data/test-00000-of-00001.parquet) with the "
    "columns image, text, mask, image_id, ann_id, img_height, img_width",
    "refcoco": "<root>/refcoco/refs(unc).p and <root>/refcoco/instances.json, images in "
    "<root>/images/mscoco/images/train2014/",
    "refcoco+": "<root>/refcoco+/refs(unc).p and <root>/refcoco+/instances.json, images in "
    "<root>/images/mscoco/images/train2014/",
    "refcocog": "<root>/refcocog/refs(umd).p and <root>/refcocog/instances.json, images in "
    "<root>/images/mscoco/images/train2014/",
    "segzero-train": "a save_to_disk folder or parquet files with the columns id, problem, solution, image, "
    "img_height, img_width (refCOCOg_9k_840)",
}
"""Dataset name -> the layout its loader reads (see each loader's module docstring for details)."""


def expected_layout(dataset: str) -> str:
    """The one-line layout of ``dataset``, or a pointer to its loader's documentation."""
    return EXPECTED_LAYOUTS.get(dataset, f"see the {dataset!r} loader's documentation")


def empty_split_error(dataset: str, split: str, source: str) -> DatasetError:
    """The error for a split that exists but holds no samples at all (nothing to read, nothing skipped)."""
    return DatasetError(
        source, f"holds no {dataset} samples for split {split!r}", f"expected layout: {expected_layout(dataset)}"
    )
