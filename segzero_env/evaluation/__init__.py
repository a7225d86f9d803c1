"""Evaluation: score any policy on any split with the benchmark's metric, resumably.

>>> from segzero_env.evaluation import evaluate  # doctest: +SKIP
>>> evaluate("ReasonSegShapes-v0", {"segmenter": "box"}, "oracle", "out/oracle", limit=20)  # doctest: +SKIP
"""

from segzero_env.evaluation.runner import evaluate
from segzero_env.evaluation.summary import summarise, summary_table

__all__ = ["evaluate", "summarise", "summary_table"]
