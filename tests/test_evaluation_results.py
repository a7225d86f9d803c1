import json

import numpy as np
import pytest

from segzero_env.evaluation.results import ResultsWriter, by_index, read_results, write_json
from segzero_env.evaluation.summary import aggregate, record_counts, summarise, summary_table
from segzero_env.metrics import SampleIoU


def rec(index, sid=None, **extra):
    return {"index": index, "sample_id": sid or f"s{index}", **extra}


def test_writer_appends_flushed_lines_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "results.jsonl"
    writer = ResultsWriter(path)
    writer.append(rec(0, value=np.float32(0.5), arr=np.arange(2)))
    # flushed: readable while the writer is still open
    records, valid = read_results(path)
    assert records == [rec(0, value=0.5, arr=[0, 1])] and valid == path.stat().st_size
    writer.close()
    with pytest.raises(FileExistsError, match="--resume"):
        ResultsWriter(path)


def test_resume_drops_a_torn_last_line_and_keeps_complete_ones(tmp_path):
    path = tmp_path / "results.jsonl"
    with ResultsWriter(path) as writer:
        writer.append(rec(0))
        writer.append(rec(1))
    complete = path.stat().st_size
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"index": 2, "sample_id": "s2", "rep')  # killed mid-write
    records, valid = read_results(path)
    assert [r["sample_id"] for r in records] == ["s0", "s1"] and valid == complete
    with ResultsWriter(path, resume=True) as writer:
        assert [r["sample_id"] for r in writer.existing] == ["s0", "s1"]
        writer.append(rec(2))
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [json.loads(x)["sample_id"] for x in lines] == ["s0", "s1", "s2"]


def test_torn_line_with_newline_at_end_and_duplicates(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(rec(0)) + "\n" + json.dumps(rec(0, extra=1)) + "\n" + '{"bro\n', encoding="utf-8")
    records, _ = read_results(path)
    assert records == [rec(0)]  # first copy kept, torn last line dropped


def test_corrupt_middle_line_is_an_error(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text(json.dumps(rec(0)) + "\nnot json\n" + json.dumps(rec(1)) + "\n", encoding="utf-8")
    with pytest.raises(ValueError, match="results.jsonl:2"):
        read_results(path)
    path.write_text('{"index": 0}\n', encoding="utf-8")
    with pytest.raises(ValueError, match="sample_id"):
        read_results(path)


def test_missing_file_reads_empty(tmp_path):
    assert read_results(tmp_path / "none.jsonl") == ([], 0)


def test_write_json_is_atomic(tmp_path):
    write_json(tmp_path / "m.json", {"a": np.int64(3)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"a": 3}
    assert not list(tmp_path.glob("*.tmp"))


def test_aggregate_matches_hand_numbers():
    counts = [SampleIoU(1, 2, 0.5), SampleIoU(0, 0, 1.0), SampleIoU(3, 4, 0.75)]
    lisa = aggregate(counts, "lisa")
    assert lisa["n"] == 3 and lisa["giou"] == pytest.approx((0.5 + 1 + 0.75) / 3)
    assert lisa["ciou"] == pytest.approx(4 / 6)
    segzero = aggregate([SampleIoU(1, 2, 0.5), SampleIoU(0, 0, float("nan"))], "seg-zero")
    assert segzero == {"giou": 0.5, "ciou": 0.5, "n": 1, "n_skipped": 1}
    assert record_counts({"intersection": 0, "union": 0, "iou": None}).union == 0


def test_summarise_splits_kinds_and_counts_failures():
    records = [
        rec(
            0,
            query_kind="short",
            intersection=1,
            union=2,
            iou=0.5,
            reply="r",
            parse_failure=None,
            reward=1.0,
            reward_terms={"mask_iou": 0.5, "think_format": 1.0},
        ),
        rec(
            1,
            query_kind="long",
            intersection=0,
            union=5,
            iou=0.0,
            reply="",
            parse_failure="empty",
            reward=0.0,
            reward_terms={"mask_iou": 0.0, "think_format": 0.0},
        ),
        rec(
            2,
            query_kind="long",
            intersection=3,
            union=3,
            iou=1.0,
            reply="x",
            parse_failure=None,
            reward=3.0,
            reward_terms={"mask_iou": 1.0, "think_format": 1.0},
        ),
    ]
    m = summarise(by_index(records[::-1]), "lisa")
    assert m["n"] == 3 and m["giou"] == pytest.approx(0.5) and m["ciou"] == pytest.approx(4 / 10)
    assert m["short"]["n"] == 1 and m["short"]["giou"] == 0.5
    assert m["long"]["n"] == 2 and m["long"]["giou"] == 0.5 and m["long"]["ciou"] == pytest.approx(3 / 8)
    assert m["unusable_replies"] == 1 and m["unusable_reply_rate"] == pytest.approx(1 / 3)
    assert m["failure_counts"] == {"empty": 1} and m["empty_replies"] == 1
    assert m["reward_terms_mean"] == {"mask_iou": pytest.approx(0.5), "think_format": pytest.approx(2 / 3)}
    assert m["metric_definition"] == "lisa" and "ignore" in m["metric_definition_text"]
    table = summary_table(m)
    assert "short" in table and "long" in table and "33.3%" in table
    with pytest.raises(ValueError, match="unknown"):
        summarise(records, "coco")
