"""ReasonSeg as an OpenEnv environment, on ``openenv-core``'s server and client.

OpenEnv users (TRL's OpenEnv integration among them) reset, step and read the state of an
environment over HTTP / WebSocket. This module gives them the env:

- :class:`ReasonSegAction` (``reply``, optional ``sample_id``), :class:`ReasonSegObservation`
  (the image as a base64 PNG, the query, the filled-in prompt, and after a step every reward
  term, the IoU and the parse failure) and :class:`ReasonSegState`: OpenEnv's typed models.
- :class:`ReasonSegEnvironment`: an ``openenv.core.env_server.Environment`` wrapping one
  :class:`~segzero_env.envs.reasonseg_env.ReasonSegEnv`. Sessions share one dataset and one
  segmenter (built once by :func:`create_openenv_app`), so a session costs a few objects.
- :func:`create_openenv_app`: openenv's ``create_fastapi_app`` over that environment
  (``/reset``, ``/step``, ``/state``, ``/schema``, ``/health`` and the ``/ws`` session socket).
  ``segzero serve-openenv`` runs it with uvicorn. With ``segmenter="remote"`` the masks come
  from ``segzero serve``, so the OpenEnv face shares the batched SAM2 service.
- :class:`ReasonSegEnvClient`: openenv's ``EnvClient`` for it (``async``; ``.sync()`` for plain calls).

OpenEnv's stateless HTTP ``/step`` builds a fresh environment per call: send ``sample_id`` with
the reply there. WebSocket sessions (the client) keep their episode between calls.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Mapping
from typing import Any

import numpy as np
from openenv.core import EnvClient
from openenv.core.client_types import StepResult
from openenv.core.env_server.interfaces import Environment
from openenv.core.env_server.types import Action, Observation, State
from pydantic import Field

DEFAULT_ENV_ID = "ReasonSegShapes-v0"


class ReasonSegAction(Action):
    """The policy's reply; ``sample_id`` starts that sample's episode first when none is running."""

    reply: str = Field(..., description="The reply text: <think>...</think><answer>{...}</answer>")
    sample_id: str | None = Field(default=None, description="Sample to answer (stateless /step needs it)")


class ReasonSegObservation(Observation):
    """What the policy sees, and after a step what its reply earned."""

    sample_id: str = Field(default="", description="The dataset's id of the sample")
    image_png: str = Field(default="", description="The S x S observation image, base64 PNG")
    image_size: int = Field(default=0, description="S: coordinates in replies are pixels of this frame")
    query: str = Field(default="", description="The raw query")
    prompt: str = Field(default="", description="The filled-in prompt template (plus feedback on refinement turns)")
    reward_terms: dict[str, float] = Field(default_factory=dict, description="Every reward term (after a step)")
    iou: float | None = Field(default=None, description="LISA IoU of the predicted mask (after a step)")
    parse_failure: str | None = Field(default=None, description="Why the reply could not be used, if so")
    parse_detail: str = Field(default="", description="Human-readable parse explanation")


class ReasonSegState(State):
    """Episode id, steps taken, and the sample being answered."""

    sample_id: str | None = Field(default=None, description="The current sample")
    done: bool = Field(default=False, description="Whether the episode has ended")


def _png_base64(image: np.ndarray) -> str:
    import cv2

    ok, data = cv2.imencode(".png", np.ascontiguousarray(image[:, :, ::-1]))
    if not ok:
        raise ValueError("could not encode the observation image as PNG")
    return base64.b64encode(data.tobytes()).decode("ascii")


class ReasonSegEnvironment(Environment[ReasonSegAction, ReasonSegObservation, ReasonSegState]):
    """One OpenEnv session over a :class:`~segzero_env.envs.reasonseg_env.ReasonSegEnv`.

    Args:
        env: The env of this session (its dataset and segmenter may be shared with others).
    """

    SUPPORTS_CONCURRENT_SESSIONS = True

    def __init__(self, env: Any) -> None:
        super().__init__()
        self.env = env
        self._state = ReasonSegState(episode_id=None, step_count=0)

    def _observation(self, info: Mapping[str, Any], reward: float | None = None, done: bool = False) -> Any:
        episode = self.env.episode
        return ReasonSegObservation(
            sample_id=str(info["sample_id"]),
            image_png=_png_base64(episode.image_obs),
            image_size=int(info["image_size"]),
            query=str(info["query"]),
            prompt=str(info["prompt"]),
            reward_terms={k: float(v) for k, v in info.get("reward_terms", {}).items()},
            iou=None if "iou" not in info else float(info["iou"]),
            parse_failure=info.get("parse_failure"),
            parse_detail=str(info.get("parse_detail", "")),
            reward=reward,
            done=done,
        )

    def reset(
        self, seed: int | None = None, episode_id: str | None = None, sample_id: str | None = None, **_: Any
    ) -> ReasonSegObservation:
        """Start an episode: on ``sample_id``, else on a sample drawn with ``seed``."""
        options = None if sample_id is None else {"sample_id": str(sample_id)}
        _, info = self.env.reset(seed=seed, options=options)
        self._state = ReasonSegState(
            episode_id=episode_id or uuid.uuid4().hex, step_count=0, sample_id=str(info["sample_id"]), done=False
        )
        return self._observation(info)

    def step(self, action: ReasonSegAction, timeout_s: float | None = None, **_: Any) -> ReasonSegObservation:
        """Score the reply (starting ``action.sample_id``'s episode first when none is running).

        Raises:
            ValueError: No episode is running and the action names no sample; the message says what to send.
        """
        if action.sample_id is not None and (self.env.episode is None or self._state.done):
            self.reset(sample_id=action.sample_id)
        if self.env.episode is None:
            raise ValueError("no episode is running: call reset first, or send the action with a sample_id")
        if self._state.done:
            raise ValueError("the episode has ended: call reset to start the next one")
        _, reward, terminated, truncated, info = self.env.step(action.reply)
        done = bool(terminated or truncated)
        self._state = ReasonSegState(
            episode_id=self._state.episode_id,
            step_count=self._state.step_count + 1,
            sample_id=self._state.sample_id,
            done=done,
        )
        return self._observation(info, reward=float(reward), done=done)

    @property
    def state(self) -> ReasonSegState:
        """The session's state."""
        return self._state

    def close(self) -> None:
        """End the session; the shared dataset and segmenter stay open for the other sessions."""


def environment_factory(env_id: str = DEFAULT_ENV_ID, env_kwargs: Mapping[str, Any] | None = None) -> Any:
    """A factory of :class:`ReasonSegEnvironment` sessions sharing one dataset and one segmenter."""
    import gymnasium as gym

    import segzero_env  # noqa: F401 - registers the ids
    from segzero_env.envs.reasonseg_env import ReasonSegEnv

    first = gym.make(env_id, **dict(env_kwargs or {})).unwrapped
    built = ("dataset", "segmenter", "dataset_kwargs", "segmenter_kwargs", "split", "data_root")
    spec_kwargs = dict(gym.spec(env_id).kwargs)
    rest = {k: v for k, v in {**spec_kwargs, **dict(env_kwargs or {})}.items() if k not in built}

    def make() -> ReasonSegEnvironment:
        return ReasonSegEnvironment(ReasonSegEnv(dataset=first.dataset, segmenter=first.segmenter, **rest))

    make.shared_env = first  # type: ignore[attr-defined]
    return make


def create_openenv_app(
    env_id: str = DEFAULT_ENV_ID, env_kwargs: Mapping[str, Any] | None = None, max_sessions: int = 64
) -> Any:
    """OpenEnv's FastAPI app over ReasonSeg (``/reset``, ``/step``, ``/state``, ``/schema``, ``/ws``)."""
    from openenv.core.env_server.http_server import create_fastapi_app

    return create_fastapi_app(
        environment_factory(env_id, env_kwargs), ReasonSegAction, ReasonSegObservation, max_concurrent_envs=max_sessions
    )


class ReasonSegEnvClient(EnvClient[ReasonSegAction, ReasonSegObservation, ReasonSegState]):
    """OpenEnv client of a ReasonSeg server: ``await client.reset(sample_id=...)``, ``await client.step(action)``.

    Example::

        with ReasonSegEnvClient(base_url="http://127.0.0.1:8001").sync() as client:
            result = client.reset(seed=0)
            result = client.step(ReasonSegAction(reply=policy(result.observation)))
            print(result.reward, result.observation.iou)
    """

    def _step_payload(self, action: ReasonSegAction) -> dict[str, Any]:
        return action.model_dump(exclude_none=True)

    def _parse_result(self, payload: dict[str, Any]) -> StepResult[ReasonSegObservation]:
        fields = dict(payload.get("observation", {}))
        observation = ReasonSegObservation(**fields, reward=payload.get("reward"), done=payload.get("done", False))
        return StepResult(observation=observation, reward=payload.get("reward"), done=payload.get("done", False))

    def _parse_state(self, payload: dict[str, Any]) -> ReasonSegState:
        return ReasonSegState(**payload)


def decode_image(observation: ReasonSegObservation) -> np.ndarray:
    """The observation's ``S x S x 3`` uint8 RGB image."""
    import cv2

    data = np.frombuffer(base64.b64decode(observation.image_png), np.uint8)
    return np.ascontiguousarray(cv2.imdecode(data, cv2.IMREAD_COLOR)[:, :, ::-1])
