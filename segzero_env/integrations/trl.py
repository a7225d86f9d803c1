"""Train with TRL's ``GRPOTrainer`` against this package's rewards.

Two pieces:

- :func:`build_grpo_dataset` turns an env split into a ``datasets.Dataset`` in TRL's vision format:
  a conversational ``prompt`` column (system turn + the env's filled-in prompt), an ``image``
  column (the ``S x S`` observation image, so the model writes coordinates in the env's frame),
  and ``sample_id`` / ``image_size`` columns the reward functions use to find the ground truth.
- :func:`make_reward_funcs` returns reward functions TRL calls as
  ``f(prompts=, completions=, completion_ids=, **columns) -> list[float]``: one for the env's
  combined reward (the preset), and optionally one per reward term (for logging, or for weighting
  in TRL with ``reward_weights``). Each reply is scored by the env itself (its parser, reward terms
  and segmenter), so TRL and the bundled agent optimise exactly the same reward.

Example::

    from trl import GRPOConfig, GRPOTrainer
    dataset = build_grpo_dataset("ReasonSegShapes-v0", split="train", image_size=840)
    rewards = make_reward_funcs("ReasonSegShapes-v0", image_size=840, segmenter="sam2")
    model = resolve_model("Qwen/Qwen2.5-VL-3B-Instruct").name_or_path  # folder, hub cache, hub; fails fast
    GRPOTrainer(model=model, reward_funcs=rewards, args=GRPOConfig(...), train_dataset=dataset).train()

:func:`resolve_model` (re-exported here from :mod:`segzero_env.hf.weights`) finds the model the way
the hf policy and the bundled agent do, and raises ``ModelNotFoundError`` listing every place tried
instead of leaving TRL to retry the hub for minutes when it cannot be reached.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

from segzero_env.hf.chat import SYSTEM_PROMPT
from segzero_env.hf.weights import ModelNotFoundError, resolve_model

__all__ = [
    "EnvScorer",
    "ModelNotFoundError",
    "RewardFunc",
    "build_grpo_dataset",
    "completion_text",
    "make_reward_funcs",
    "resolve_model",
]

RewardFunc = Callable[..., list[float]]


def _make_env(env_id: str, env_kwargs: dict[str, Any]) -> Any:
    import gymnasium as gym

    import segzero_env  # noqa: F401 - registers the ids
    from segzero_env.trust import check_env_id

    return gym.make(check_env_id(env_id), **env_kwargs).unwrapped


def build_grpo_dataset(
    env_id: str = "ReasonSegShapes-v0",
    *,
    split: str = "train",
    limit: int | None = None,
    sample_ids: Sequence[str] | None = None,
    system: str | None = SYSTEM_PROMPT,
    **env_kwargs: Any,
) -> Any:
    """Build a TRL-ready ``datasets.Dataset`` from an env split.

    Args:
        env_id: Gymnasium id of the env.
        split: Dataset split.
        limit: Keep only the first ``limit`` samples.
        sample_ids: The rows to build, in this order (repeats allowed), instead of the split's first
            samples: e.g. the exact prompt sequence another trainer drew, to train TRL on the same data.
        system: System turn text (``None`` for none).
        **env_kwargs: Passed to ``gym.make`` (``image_size``, ``dataset``, ``data_root``, ...). The
            segmenter is not used here: pass a cheap one (``segmenter="box"``) to avoid loading SAM2.

    Returns:
        A ``Dataset`` with columns ``prompt`` (list of messages), ``image`` (PIL, ``S x S``),
        ``sample_id`` (str), ``image_size`` (int) and ``query`` (str).
    """
    from datasets import Dataset
    from PIL import Image

    env_kwargs = {"split": split, "segmenter": "box", **env_kwargs}
    env = _make_env(env_id, env_kwargs)
    ids = list(env.dataset.sample_ids)[:limit] if sample_ids is None else list(sample_ids)[:limit]
    rows = []
    for sample_id in ids:
        obs, info = env.reset(options={"sample_id": sample_id})
        messages = [] if system is None else [{"role": "system", "content": system}]
        messages.append({"role": "user", "content": info["prompt"]})
        rows.append(
            {
                "prompt": messages,
                "image": Image.fromarray(obs["image"]),
                "sample_id": str(sample_id),
                "image_size": int(info["image_size"]),
                "query": info["query"],
            }
        )
    env.close()
    return Dataset.from_list(rows)


def completion_text(completion: Any) -> str:
    """The reply text of a TRL completion: a plain string, or the last message of a conversation.

    >>> completion_text([{"role": "assistant", "content": "<answer>x</answer>"}])
    '<answer>x</answer>'
    >>> completion_text([{"role": "assistant", "content": [{"type": "text", "text": "hi"}]}])
    'hi'
    """
    if isinstance(completion, str):
        return completion
    if isinstance(completion, Sequence) and completion and isinstance(completion[-1], dict):
        content = completion[-1].get("content", "")
        if isinstance(content, str):
            return content
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(completion)


class EnvScorer:
    """Score ``(sample_id, reply)`` pairs with one env, caching the results.

    Several reward functions called on the same completions then segment each reply once.

    Args:
        env_id: Gymnasium id.
        cache_size: How many scored pairs are kept.
        **env_kwargs: Passed to ``gym.make`` (``segmenter``, ``reward``, ``image_size``, ...).
    """

    def __init__(self, env_id: str = "ReasonSegShapes-v0", cache_size: int = 4096, **env_kwargs: Any) -> None:
        self.env = _make_env(env_id, env_kwargs)
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], tuple[float, dict[str, float]]] = OrderedDict()

    @property
    def term_names(self) -> list[str]:
        """Names of the env's reward terms, in the preset's order."""
        return list(self.env.preset.weights)

    def score(self, sample_id: str, reply: str) -> tuple[float, dict[str, float]]:
        """``(combined reward, reward terms)`` of ``reply`` on sample ``sample_id``."""
        key = (str(sample_id), reply)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        self.env.reset(options={"sample_id": str(sample_id)})
        _, reward, _, _, info = self.env.step(reply)
        result = (float(reward), {k: float(v) for k, v in info["reward_terms"].items()})
        self._cache[key] = result
        if len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return result


def make_reward_funcs(
    env_id: str = "ReasonSegShapes-v0",
    *,
    terms: Sequence[str] | None = None,
    include_combined: bool = True,
    scorer: EnvScorer | None = None,
    **env_kwargs: Any,
) -> list[RewardFunc]:
    """Reward functions for ``GRPOTrainer(reward_funcs=...)``.

    Args:
        env_id: Gymnasium id of the env whose rewards are used.
        terms: Reward terms to expose as separate functions (``"all"`` is not special: pass
            ``scorer.term_names`` for every term). ``None`` exposes none.
        include_combined: Add the preset's combined reward (named ``segzero_reward``). With terms as
            well, give TRL ``reward_weights`` of 0 for the terms that should only be logged.
        scorer: An existing :class:`EnvScorer` to share; built from ``env_id`` and ``env_kwargs`` otherwise.
        **env_kwargs: Passed to ``gym.make`` (``segmenter``, ``reward``, ``image_size``, ...); the
            ``image_size`` must match the dataset's.

    Returns:
        Callables named ``segzero_reward`` and ``segzero_<term>``; each needs the ``sample_id`` column.
    """
    scorer = scorer or EnvScorer(env_id, **env_kwargs)
    unknown = [t for t in (terms or []) if t not in scorer.term_names]
    if unknown:
        raise ValueError(f"unknown reward terms {unknown}; the env's terms are {scorer.term_names}")

    def _texts(completions: Sequence[Any], sample_id: Sequence[str] | None) -> list[tuple[str, str]]:
        if sample_id is None:
            raise ValueError("the dataset needs a 'sample_id' column (build it with build_grpo_dataset)")
        if len(sample_id) != len(completions):
            raise ValueError(f"{len(completions)} completions but {len(sample_id)} sample ids")
        return [(str(s), completion_text(c)) for s, c in zip(sample_id, completions, strict=True)]

    funcs: list[RewardFunc] = []
    if include_combined:

        def segzero_reward(completions: Sequence[Any], sample_id: Sequence[str] | None = None, **_: Any) -> list[float]:
            return [scorer.score(s, text)[0] for s, text in _texts(completions, sample_id)]

        funcs.append(segzero_reward)
    for term in terms or []:

        def term_reward(
            completions: Sequence[Any], sample_id: Sequence[str] | None = None, _term: str = term, **_: Any
        ) -> list[float]:
            return [scorer.score(s, text)[1][_term] for s, text in _texts(completions, sample_id)]

        term_reward.__name__ = f"segzero_{term}"
        funcs.append(term_reward)
    return funcs
