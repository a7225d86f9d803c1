"""The default data location and ``segzero data check``."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from dataset_writers import make_ref, rect, write_reasonseg_item, write_refer

from segzero_env.cli import main
from segzero_env.datasets import load
from segzero_env.datasets.check import check_split, run_check
from segzero_env.datasets.errors import DatasetError
from segzero_env.datasets.paths import DATA_DIR_ENV, data_dir


def test_data_dir_env_var_then_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    assert data_dir() == tmp_path
    monkeypatch.delenv(DATA_DIR_ENV)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert data_dir() == tmp_path / "home" / ".cache" / "segzero_env" / "data"


def test_default_location_is_used_and_the_error_lists_every_place(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path))
    with pytest.raises(DatasetError) as caught:
        load("reasonseg", split="val")
    message = str(caught.value)
    assert f"{tmp_path / 'reasonseg'}, {tmp_path / 'ReasonSeg'}" in message
    assert DATA_DIR_ENV in message and "root=" in message
    write_reasonseg_item(tmp_path / "ReasonSeg" / "val", "x", (10, 10), [rect("target", 1, 1, 5, 5)])
    assert load("reasonseg", split="val").sample_ids == ["x"]
    with pytest.raises(DatasetError, match=r"looked in: .*refer, " + str(tmp_path)):
        load("refcocog", split="val")


def make_reasonseg(root: Path) -> None:
    shapes = [rect("target", 1, 1, 8, 8), rect("ignore", 2, 2, 3, 3)]
    write_reasonseg_item(root / "val", "a", (12, 12), shapes, is_sentence=True)
    write_reasonseg_item(root / "val", "b", (12, 12), [rect("target", 1, 1, 8, 8)])
    write_reasonseg_item(root / "val", "c", (12, 12), [rect("target", 1, 1, 8, 8)], is_sentence=True)
    write_reasonseg_item(root / "test", "d", (12, 12), [rect("target", 1, 1, 8, 8)])
    (root / "val" / "c.jpg").write_bytes(b"junk")  # only decoding finds this
    (root / "val" / "e.json").write_text("{}")  # no image


def test_check_counts_samples_kinds_ignore_and_skipped(tmp_path: Path) -> None:
    make_reasonseg(tmp_path)
    report = check_split("reasonseg", str(tmp_path), "val")
    assert (report.samples, report.short, report.long, report.with_ignore, report.skipped) == (2, 1, 1, 1, 2)
    assert {Path(p).name for p, _ in report.problems} == {"c.jpg", "e.json"}
    out = io.StringIO()
    assert run_check(str(tmp_path), "reasonseg", out=out) == 1
    text = out.getvalue()
    assert "reasonseg val" in text and "reasonseg test" in text and "samples: 2 (short 1, long 1)" in text
    assert "c.jpg: image does not decode" in text


def test_check_command_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_reasonseg(tmp_path)
    assert main(["data", "check", str(tmp_path), "--dataset", "reasonseg", "--split", "test"]) == 0
    assert "skipped: 0" in capsys.readouterr().out
    assert main(["data", "check", str(tmp_path / "missing"), "--dataset", "reasonseg"]) == 2
    assert "does not exist" in capsys.readouterr().out


def test_check_refcocog_finds_splits_and_bad_masks(tmp_path: Path) -> None:
    anns = [
        {"id": 1, "image_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6]]},
        {"id": 2, "image_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1]]},
    ]
    refs = [make_ref(1, 1, 1, "val", ["a", "b"]), make_ref(2, 2, 1, "val", ["c"]), make_ref(3, 1, 1, "test", ["d"])]
    write_refer(tmp_path, "refcocog", "umd", refs, {1: (10, 10)}, anns)
    out = io.StringIO()
    assert run_check(str(tmp_path), "refcocog", out=out) == 1
    text = out.getvalue()
    assert "refcocog val" in text and "refcocog test" in text and "samples: 2\n" in text
    assert "annotation 2: polygon 0 has 2 points (needs 3)" in text


def test_loaders_satisfy_the_dataset_protocol(tmp_path: Path) -> None:
    from segzero_env.datasets import SegDataset

    make_reasonseg(tmp_path / "rs")
    ann = {"id": 1, "image_id": 1, "bbox": [1, 1, 5, 5], "segmentation": [[1, 1, 6, 1, 6, 6]]}
    write_refer(tmp_path / "refer", "refcocog", "umd", [make_ref(1, 1, 1, "val", ["a"])], {1: (10, 10)}, [ann])
    loaded = [load("reasonseg", root=str(tmp_path / "rs"), split="test"), load("refcocog", root=tmp_path / "refer")]
    for ds in loaded:
        assert isinstance(ds, SegDataset)
        assert ds.has_masks and ds.index_of(ds.sample_ids[0]) == 0 and ds[0].sample_id == ds.sample_ids[0]
