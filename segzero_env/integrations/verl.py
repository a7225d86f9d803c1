"""Score replies inside verl with this package's env: a ``compute_score`` for ``custom_reward_function``.

verl calls ``compute_score(data_source, solution_str, ground_truth, extra_info)`` on its CPU reward
workers, once per reply. Here ``ground_truth`` is the sample id, and ``extra_info`` names the env
(``env_id``, ``env_kwargs``: dataset, split, data_root, segmenter, reward preset, image size), so the
worker rebuilds the same env (once per process, cached) and scores the reply with the env's
parser, reward terms and segmenter. The returned dict holds ``score`` (the preset's combined reward)
and every reward term, which verl logs.

verl configuration::

    custom_reward_function.path=<site-packages>/segzero_env/integrations/verl.py
    custom_reward_function.name=compute_score

:func:`build_verl_dataset` writes the matching rows (``data_source``, ``prompt`` with an ``<image>``
placeholder, ``images``, ``reward_model.ground_truth``, ``extra_info``); save them with
``.to_parquet(path)``. A SAM2 segmenter on CPU reward workers is slow: give them a GPU or use the
``seg-zero`` preset (box and point rules only) with ``segmenter="box"``.

A row is data, so its ``extra_info`` may name registered segmenters, datasets and env ids only: a
``"module:Class"`` there is refused even with ``SEGZERO_ALLOW_CODE=1`` (it would run code taken from
the parquet file). To use your own segmenter, point ``custom_reward_function.path`` at a file of
yours that calls ``register_segmenter("mine", "mypkg.seg:MySegmenter")`` and then this function.
"""

from __future__ import annotations

import io
import json
from typing import Any

from segzero_env.hf.chat import SYSTEM_PROMPT
from segzero_env.trust import allow_code

DEFAULT_ENV_ID = "ReasonSegShapes-v0"
_SCORERS: dict[str, Any] = {}


def _scorer(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    from segzero_env.integrations.trl import EnvScorer

    key = json.dumps([env_id, env_kwargs], sort_keys=True, default=str)
    if key not in _SCORERS:
        # env_id and env_kwargs come from the dataset row: data, so never a "module:Class" to import
        with allow_code(False):
            _SCORERS[key] = EnvScorer(env_id, **env_kwargs)
    return _SCORERS[key]


def compute_score(
    data_source: str, solution_str: str, ground_truth: Any, extra_info: dict[str, Any] | None = None
) -> dict[str, float]:
    """Score one reply the way the env would.

    Args:
        data_source: The row's ``data_source`` (informational; the env comes from ``extra_info``).
        solution_str: The decoded reply.
        ground_truth: The sample id (a ``str``), or a dict with ``sample_id``.
        extra_info: ``{"env_id": ..., "env_kwargs": {...}}``; defaults to the shapes env.

    Returns:
        ``{"score": reward, <term>: value, ...}``.

    Raises:
        ValueError: If no sample id can be read from ``ground_truth``.
        CodeNotAllowedError: ``extra_info`` names a ``"module:Class"`` (segmenter, dataset) or an env
            id with a module: rows are data, so they may only use registered names. To score with
            your own segmenter, register it by name in a module of yours that wraps this function.
    """
    extra_info = dict(extra_info or {})
    sample_id = ground_truth.get("sample_id") if isinstance(ground_truth, dict) else ground_truth
    if sample_id is None or sample_id == "":
        raise ValueError(f"ground_truth must be the sample id (or a dict with 'sample_id'), got {ground_truth!r}")
    env_kwargs = extra_info.get("env_kwargs") or {}
    if isinstance(env_kwargs, str):
        env_kwargs = json.loads(env_kwargs)
    scorer = _scorer(extra_info.get("env_id", DEFAULT_ENV_ID), dict(env_kwargs))
    reward, terms = scorer.score(str(sample_id), solution_str if isinstance(solution_str, str) else str(solution_str))
    return {"score": reward, **terms}


def build_verl_dataset(
    env_id: str = DEFAULT_ENV_ID,
    *,
    split: str = "train",
    limit: int | None = None,
    data_source: str | None = None,
    **env_kwargs: Any,
) -> Any:
    """Rows in verl's multimodal RL format for an env split, as a ``datasets.Dataset``.

    Args:
        env_id: Gymnasium id.
        split: Dataset split.
        limit: Keep only the first ``limit`` samples.
        data_source: Value of the ``data_source`` column (default ``"segzero/<env_id>"``).
        **env_kwargs: Passed to the env here and, through ``extra_info``, to ``compute_score``
            (``image_size``, ``segmenter``, ``reward``, ``dataset``, ``data_root``, ...).
    """
    from segzero_env.integrations.trl import build_grpo_dataset

    kwargs = {"split": split, **env_kwargs}
    rows = build_grpo_dataset(env_id, limit=limit, system=SYSTEM_PROMPT, **{**kwargs, "segmenter": "box"})
    source = data_source or f"segzero/{env_id}"
    out = []
    for row in rows:
        buffer = io.BytesIO()
        row["image"].save(buffer, format="PNG")
        out.append(
            {
                "data_source": source,
                "prompt": [
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": "<image>" + row["prompt"][-1]["content"]},
                ],
                "images": [{"bytes": buffer.getvalue()}],
                "ability": "reasoning_segmentation",
                "reward_model": {"style": "rule", "ground_truth": row["sample_id"]},
                "extra_info": {"env_id": env_id, "env_kwargs": json.dumps(kwargs), "sample_id": row["sample_id"]},
            }
        )
    from datasets import Dataset

    return Dataset.from_list(out)
