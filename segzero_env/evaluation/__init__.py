"""Evaluation: score any policy on any split with the benchmark's metric, resumably.

Example (the same run as ``segzero eval --env ReasonSegShapes-v0 --env-kwargs segmenter=box
--policy oracle --limit 20 --out out/oracle``)::

    from segzero_env.evaluation import evaluate

    metrics = evaluate("ReasonSegShapes-v0", {"segmenter": "box"}, "oracle", "out/oracle", limit=20)
    print(metrics["giou"], metrics["ciou"], metrics["n"])
"""

from segzero_env.evaluation.runner import evaluate
from segzero_env.evaluation.summary import summarise, summary_table

__all__ = ["evaluate", "summarise", "summary_table"]
