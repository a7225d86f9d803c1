"""``oracle``: the ground-truth box and points, so its score measures the segmenter alone."""

from __future__ import annotations

from typing import Any

from segzero_env.policies.base import PolicyBase
from segzero_env.policies.replies import write_no_object, write_objects, write_reply


class OraclePolicy(PolicyBase):
    """Answer with the ground truth the env exposes in ``info``, in the ``S x S`` frame.

    Reads ``info["gt_box"]`` (``[x1, y1, x2, y2]``) and ``info["gt_points"]`` (a list of ``[x, y]``).
    With one GT point it is repeated; with none, the box centre is used. A sample whose query names
    nothing (``info["no_target"]``) gets the "no object" answer ``<answer>[]</answer>``; one with
    several targets (``info["gt_objects"]``) gets a VisionReasoner list of them, whatever ``schema``
    (Seg-Zero's grammar holds one object). Other samples without a target (``gt_box`` is ``None``)
    get the empty reply ``""``, scored as the empty prediction their ground truth is.
    ``stats()["no_target"]`` counts the samples answered with no object.

    Args:
        schema: Answer grammar to write (``"seg-zero"`` or ``"vision-reasoner"``).
    """

    name = "oracle"

    def __init__(self, schema: str = "seg-zero") -> None:
        self.schema = schema
        self.no_target = 0

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """Return the ground-truth reply for this sample."""
        if "gt_box" not in info:
            raise KeyError(
                "the oracle policy needs info['gt_box'] (and info['gt_points']) in the S x S frame from env.reset; "
                f"this env's reset info has keys {sorted(info)}"
            )
        box = info["gt_box"]
        if info.get("no_target"):
            self.no_target += 1
            return write_no_object(schema=self.schema, think="Nothing in the image fits the query.")
        targets = info.get("gt_objects") or []
        if len(targets) > 1:
            objects = [(t["box"], (t["points"] or [_centre(t["box"])])[:1]) for t in targets]
            return write_objects(objects, think="The ground-truth objects.")
        if box is None:
            self.no_target += 1
            return ""
        x1, y1, x2, y2 = (float(v) for v in box)
        points = [tuple(float(c) for c in p) for p in (info.get("gt_points") or [])]
        if not points:
            points = [((x1 + x2) / 2, (y1 + y2) / 2)]
        if len(points) == 1:
            points = points * 2
        return write_reply((x1, y1, x2, y2), points[:2], schema=self.schema, think="The ground truth.")

    def stats(self) -> dict[str, Any]:
        """How many samples had no target to point at."""
        return {"no_target": self.no_target}


def _centre(box: list[float]) -> list[float]:
    return [(box[0] + box[2]) / 2, (box[1] + box[3]) / 2]
