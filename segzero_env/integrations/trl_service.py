"""TRL reward functions that score through ``segzero serve`` (async, so TRL gathers them concurrently).

TRL's ``GRPOTrainer`` accepts ``async def`` reward functions and awaits them together; its
async rollout worker sees no GPU, so SAM2 belongs in a service. These functions send each
call's completions to the service in ONE request (the service splits it by image and batches it
with other trainers' requests) and share their results: the combined reward and every term
function scored on the same completions cost one request. Build the dataset with
:func:`segzero_env.integrations.trl.build_grpo_dataset` (its ``sample_id`` column names the
samples); start the service on the same env, dataset and image size.

Example::

    rewards = make_service_reward_funcs("http://127.0.0.1:8000", terms=["mask_iou"])
    GRPOTrainer(model=path, reward_funcs=rewards, args=GRPOConfig(...), train_dataset=dataset).train()
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from segzero_env.integrations.trl import completion_text
from segzero_env.service.client import ScorerClient

AsyncRewardFunc = Callable[..., Awaitable[list[float]]]


class ServiceScorer:
    """Scores ``(sample_id, reply)`` pairs through the service, caching results and joining requests in flight.

    Args:
        client: A :class:`~segzero_env.service.client.ScorerClient` (its timeout and retries apply).
        cache_size: Scored pairs kept.
    """

    def __init__(self, client: ScorerClient, cache_size: int = 8192) -> None:
        self.client = client
        self.cache_size = int(cache_size)
        self._cache: OrderedDict[tuple[str, str], dict[str, Any]] = OrderedDict()
        self._pending: dict[tuple[str, str], asyncio.Future] = {}
        self.requests_sent = 0

    async def score(self, pairs: Sequence[tuple[str, str]]) -> list[dict[str, Any]]:
        """One result dict per pair (``reward``, ``terms``, ``iou``, ``parse_failure``, ...)."""
        loop = asyncio.get_running_loop()
        missing: list[tuple[str, str]] = []
        for pair in dict.fromkeys(pairs):
            if pair not in self._cache and pair not in self._pending:
                missing.append(pair)
                self._pending[pair] = loop.create_future()
        if missing:
            try:
                self.requests_sent += 1
                results = await self.client.score_async([{"sample_id": s, "reply": r} for s, r in missing])
            except BaseException as error:
                for pair in missing:
                    future = self._pending.pop(pair)
                    future.set_exception(error)
                    future.exception()  # mark retrieved: the error is raised below, not logged as lost
                raise
            for pair, result in zip(missing, results, strict=True):
                self._store(pair, result)
                self._pending.pop(pair).set_result(result)
        out = []
        for pair in pairs:
            if pair in self._cache:
                self._cache.move_to_end(pair)
                out.append(self._cache[pair])
            else:
                out.append(await asyncio.shield(self._pending[pair]))
        return out

    def _store(self, pair: tuple[str, str], result: dict[str, Any]) -> None:
        self._cache[pair] = result
        while len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)


def make_service_reward_funcs(
    url: str | None = None,
    *,
    terms: Sequence[str] | None = None,
    include_combined: bool = True,
    scorer: ServiceScorer | None = None,
    **client_kwargs: Any,
) -> list[AsyncRewardFunc]:
    """Async reward functions for ``GRPOTrainer(reward_funcs=...)`` backed by the scoring service.

    Args:
        url: The service's base URL (``http://host:8000``); not needed with ``scorer``.
        terms: Reward terms to expose as separate functions (named ``segzero_<term>``).
        include_combined: Add the preset's combined reward (``segzero_reward``).
        scorer: A :class:`ServiceScorer` to share between several lists of functions.
        **client_kwargs: For :class:`~segzero_env.service.client.ScorerClient` (``token``,
            ``timeout_s``, ``retries``).

    Returns:
        ``async def`` callables taking TRL's ``completions`` and the ``sample_id`` column.
    """
    if scorer is None:
        if url is None:
            raise ValueError("pass the service URL (url='http://127.0.0.1:8000') or a ServiceScorer")
        scorer = ServiceScorer(ScorerClient(url, **client_kwargs))

    def _pairs(completions: Sequence[Any], sample_id: Sequence[str] | None) -> list[tuple[str, str]]:
        if sample_id is None:
            raise ValueError("the dataset needs a 'sample_id' column (build it with build_grpo_dataset)")
        if len(sample_id) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(sample_id)} sample ids")
        return [(str(s), completion_text(c)) for s, c in zip(sample_id, completions, strict=True)]

    funcs: list[AsyncRewardFunc] = []
    if include_combined:

        async def segzero_reward(
            completions: Sequence[Any], sample_id: Sequence[str] | None = None, **_: Any
        ) -> list[float]:
            return [r["reward"] for r in await scorer.score(_pairs(completions, sample_id))]

        funcs.append(segzero_reward)
    for term in terms or []:

        async def term_reward(
            completions: Sequence[Any], sample_id: Sequence[str] | None = None, _term: str = term, **_: Any
        ) -> list[float]:
            results = await scorer.score(_pairs(completions, sample_id))
            if results and _term not in results[0]["terms"]:
                raise ValueError(f"the service has no reward term {_term!r}; it has {sorted(results[0]['terms'])}")
            return [r["terms"][_term] for r in results]

        term_reward.__name__ = f"segzero_{term}"
        funcs.append(term_reward)
    return funcs
