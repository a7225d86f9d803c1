"""``replay``: replies generated elsewhere, read from a JSONL file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from segzero_env.policies.base import PolicyBase


def read_replies(path: str | Path) -> dict[str, str]:
    """Read ``{"sample_id": ..., "reply": ...}`` lines into a dict; the last line for an id wins.

    Blank lines are skipped. A line that is not a JSON object with both keys raises ``ValueError``
    naming the file and line, because a silently skipped line would be scored as a wrong answer.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"replies file {str(path)!r} not found; pass a JSONL file of sample_id/reply lines")
    replies: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{line_no}: not valid JSON ({err.msg})") from err
            if not isinstance(record, dict) or "sample_id" not in record or "reply" not in record:
                raise ValueError(f'{path}:{line_no}: expected an object with "sample_id" and "reply" keys')
            reply = record["reply"]
            replies[str(record["sample_id"])] = reply if isinstance(reply, str) else json.dumps(reply)
    return replies


class ReplayPolicy(PolicyBase):
    """Look each sample's reply up by ``info["sample_id"]`` in a JSONL file.

    A sample with no line in the file gets the empty reply ``""`` (an unusable reply, scored as an
    empty prediction); ``stats()["missing_replies"]`` counts them.

    Args:
        replies: Path of the JSONL file (``{"sample_id": ..., "reply": ...}`` per line).
    """

    name = "replay"

    def __init__(self, replies: str | Path) -> None:
        self.path = Path(replies)
        self.replies = read_replies(self.path)
        self.missing: list[str] = []

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """Return the stored reply for ``info["sample_id"]``, or ``""`` when there is none."""
        if "sample_id" not in info:
            raise KeyError("the replay policy needs info['sample_id'] to look replies up; this env's info has none")
        sample_id = str(info["sample_id"])
        if sample_id not in self.replies:
            self.missing.append(sample_id)
            return ""
        return self.replies[sample_id]

    def stats(self) -> dict[str, Any]:
        """How many samples had no stored reply, and the first few of their ids."""
        return {"missing_replies": len(self.missing), "missing_examples": self.missing[:5]}
