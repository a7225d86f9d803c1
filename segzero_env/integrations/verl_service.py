"""verl reward functions that score through ``segzero serve``: SAM2 on the service's GPUs, not on reward workers.

verl's reward workers have no GPU. Point them at a running service instead of building an env:

- Batched (``reward_model.reward_manager=batch``): :func:`compute_score_batch` receives the whole
  batch in one call and sends it in one request::

      custom_reward_function.path=<site-packages>/segzero_env/integrations/verl_service.py
      custom_reward_function.name=compute_score_batch
      +custom_reward_function.reward_kwargs.scorer_url=http://10.0.0.5:8000

- Reward loop (``reward_model.use_reward_loop=True``): :func:`compute_score_async` is an
  ``async def`` called once per reply; the service gathers concurrent calls into batches.
  ``custom_reward_function.name=compute_score_async`` with the same ``scorer_url``.

The URL comes from the ``scorer_url`` keyword (verl's ``reward_kwargs``), else
``$SEGZERO_SCORER_URL``; never from a data row. ``ground_truth`` is the sample id (the rows of
:func:`segzero_env.integrations.verl.build_verl_dataset`); a request carries only sample ids and
replies, so nothing in a data row can make the service build or import anything. Each result is
``{"score": reward, <term>: value, ..., "iou": ...}``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from segzero_env.service.client import ScorerClient

URL_ENV = "SEGZERO_SCORER_URL"
"""Environment variable read when no ``scorer_url`` is given."""

_CLIENTS: dict[str, ScorerClient] = {}


def _client(scorer_url: str | None, timeout_s: float) -> ScorerClient:
    url = scorer_url or os.environ.get(URL_ENV)
    if not url:
        raise ValueError(
            "no scoring service URL: set +custom_reward_function.reward_kwargs.scorer_url=http://HOST:8000 "
            f"or ${URL_ENV}, and start the service with `segzero serve`"
        )
    key = f"{url}|{timeout_s}"
    if key not in _CLIENTS:
        _CLIENTS[key] = ScorerClient(url, timeout_s=timeout_s)
    return _CLIENTS[key]


def _sample_id(ground_truth: Any, index: int | None = None) -> str:
    sample_id = ground_truth.get("sample_id") if isinstance(ground_truth, dict) else ground_truth
    if sample_id is None or sample_id == "":
        where = "ground_truth" if index is None else f"ground_truths[{index}]"
        raise ValueError(f"{where} must be the sample id (or a dict with 'sample_id'), got {ground_truth!r}")
    return str(sample_id)


def _to_verl(result: dict[str, Any]) -> dict[str, float]:
    return {"score": float(result["reward"]), **result["terms"], "iou": float(result["iou"])}


def compute_score_batch(
    data_sources: Sequence[str],
    solution_strs: Sequence[str],
    ground_truths: Sequence[Any],
    extra_infos: Sequence[dict[str, Any] | None] | None = None,
    scorer_url: str | None = None,
    timeout_s: float = 300.0,
    **_: Any,
) -> list[dict[str, float]]:
    """Score a whole batch in one request (verl's ``batch`` reward manager).

    Args:
        data_sources: The rows' ``data_source`` (informational).
        solution_strs: The decoded replies.
        ground_truths: The sample ids (or dicts with ``sample_id``).
        extra_infos: Unused; the service's env is fixed when it starts.
        scorer_url: The service's base URL (else ``$SEGZERO_SCORER_URL``).
        timeout_s: Seconds one attempt may take.

    Returns:
        One ``{"score", <term>..., "iou"}`` dict per reply.
    """
    if not len(solution_strs) == len(ground_truths):
        raise ValueError(f"{len(solution_strs)} solution_strs but {len(ground_truths)} ground_truths")
    items = [
        {"sample_id": _sample_id(gt, i), "reply": s if isinstance(s, str) else str(s)}
        for i, (s, gt) in enumerate(zip(solution_strs, ground_truths, strict=True))
    ]
    if not items:
        return []
    return [_to_verl(r) for r in _client(scorer_url, timeout_s).score(items)]


async def compute_score_async(
    data_source: str,
    solution_str: str,
    ground_truth: Any,
    extra_info: dict[str, Any] | None = None,
    reward_router_address: str | None = None,
    reward_model_tokenizer: Any = None,
    scorer_url: str | None = None,
    timeout_s: float = 300.0,
    **_: Any,
) -> dict[str, float]:
    """Score one reply without blocking verl's reward loop (``async def``).

    ``reward_router_address`` and ``reward_model_tokenizer`` (verl's reward-model router) are
    accepted and unused: the scoring service is addressed by ``scorer_url``.
    """
    reply = solution_str if isinstance(solution_str, str) else str(solution_str)
    items = [{"sample_id": _sample_id(ground_truth), "reply": reply}]
    (result,) = await _client(scorer_url, timeout_s).score_async(items)
    return _to_verl(result)
