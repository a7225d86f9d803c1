"""The policy protocol and the name registry behind :func:`make_policy`.

A policy turns a batch of observations (with the ``info`` dicts the env returned on reset)
into reply strings, one per observation. Replies are free text in the env's action grammar;
the env parses and scores them, so a policy never needs to be "right" to be valid.

>>> policy = make_policy("full-image")
>>> import numpy as np
>>> obs = {"image": np.zeros((84, 84, 3), np.uint8), "query": "the red square"}
>>> reply = policy.act([obs], [{"image_size": 84}])[0]
>>> '"bbox": [0, 0, 83, 83]' in reply
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

from segzero_env.trust import resolve


@runtime_checkable
class Policy(Protocol):
    """Anything that answers a batch of observations with reply strings.

    ``act`` receives parallel sequences (observation ``i`` goes with info ``i``) and returns a list
    of the same length. ``reset`` is optional: the evaluation harness calls it once with the run's
    seed when the policy defines it.
    """

    def act(self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]) -> list[str]:
        """Return one reply per observation."""
        ...


class PolicyBase:
    """Convenience base: subclasses implement ``act_one``; ``act`` loops over the batch.

    Attributes:
        name: Registry name, used in run records.
    """

    name = "base"

    def reset(self, seed: int | None = None) -> None:
        """Re-seed the policy (no-op unless overridden)."""

    def act(self, observations: Sequence[dict[str, Any]], infos: Sequence[dict[str, Any]]) -> list[str]:
        """Return one reply per observation by calling :meth:`act_one` on each."""
        check_batch(observations, infos)
        return [self.act_one(obs, info) for obs, info in zip(observations, infos, strict=True)]

    def act_one(self, observation: dict[str, Any], info: dict[str, Any]) -> str:
        """Return the reply for one observation."""
        raise NotImplementedError

    def stats(self) -> dict[str, Any]:
        """Counters worth reporting at the end of a run (empty unless overridden)."""
        return {}

    def close(self) -> None:
        """Release resources (models, thread pools)."""


def check_batch(observations: Sequence[Any], infos: Sequence[Any]) -> None:
    """Raise ``ValueError`` when the two parallel sequences differ in length."""
    if len(observations) != len(infos):
        raise ValueError(
            f"act() got {len(observations)} observations but {len(infos)} infos; pass one info dict per observation"
        )


def frame_size(observation: dict[str, Any], info: dict[str, Any]) -> int:
    """Side ``S`` of the square observation frame, from ``info["image_size"]`` or the image shape."""
    if info.get("image_size") is not None:
        return int(info["image_size"])
    image = observation.get("image")
    if image is None:
        raise ValueError("observation has no 'image' and info has no 'image_size'; cannot tell the frame size")
    return int(image.shape[1])


def prompt_text(observation: dict[str, Any], info: dict[str, Any]) -> str:
    """Return the env's filled-in prompt (``info["prompt"]``), falling back to the bare query."""
    prompt = info.get("prompt")
    if prompt:
        return str(prompt)
    query = observation.get("query") or info.get("query")
    if not query:
        raise ValueError("neither info['prompt'] nor a query is available; the policy has nothing to ask the model")
    return str(query)


_REGISTRY: dict[str, str | Callable[..., Policy]] = {
    "random": "segzero_env.policies.random_policy:RandomPolicy",
    "full-image": "segzero_env.policies.full_image:FullImagePolicy",
    "oracle": "segzero_env.policies.oracle:OraclePolicy",
    "oracle-refine": "segzero_env.policies.oracle_refine:OracleRefinePolicy",
    "replay": "segzero_env.policies.replay:ReplayPolicy",
    "hf": "segzero_env.policies.hf_policy:HFPolicy",
    "openai": "segzero_env.policies.openai_policy:OpenAIPolicy",
}


def register_policy(name: str, target: str | Callable[..., Policy]) -> None:
    """Register a ``"module:Class"`` string (loaded lazily) or a callable under ``name``."""
    _REGISTRY[name] = target


def policy_names() -> list[str]:
    """Names accepted by :func:`make_policy`."""
    return sorted(_REGISTRY)


def make_policy(spec: str | type | Policy, **kwargs: Any) -> Policy:
    """Build a policy from a registered name or a class, or return an instance unchanged.

    Args:
        spec: ``"random"``, ``"full-image"``, ``"oracle"``, ``"replay"``, ``"hf"``, ``"openai"``, a
            policy class, an object with an ``act`` method, or a ``"module:Class"`` string, which
            runs code and is built only when code is allowed (:mod:`segzero_env.trust`).
        **kwargs: Keyword arguments for the policy's constructor.

    Raises:
        CodeNotAllowedError: ``spec`` is an unregistered ``"module:Class"`` and code is not allowed.
        ValueError: ``spec`` is unknown or cannot be imported, or kwargs come with an instance.
    """
    if isinstance(spec, type):
        return spec(**kwargs)
    if not isinstance(spec, str):
        if kwargs:
            raise ValueError("policy kwargs given together with a policy instance; configure the instance instead")
        if not callable(getattr(spec, "act", None)):
            raise ValueError(f"{spec!r} has no act() method; a policy needs act(observations, infos) -> list[str]")
        return spec
    return resolve("policy", spec, _REGISTRY)(**kwargs)
