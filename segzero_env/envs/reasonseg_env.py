"""The reasoning-segmentation environment."""

from __future__ import annotations

import string
from collections.abc import Mapping
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from segzero_env.arguments import finite_number, keyword_mapping, whole_number
from segzero_env.datasets import SegDataset, load
from segzero_env.envs.episode import MAX_IMAGE_SIZE, QUERY_CHARSET, Episode, make_episode
from segzero_env.envs.query_space import QueryText
from segzero_env.envs.refinement import (
    FEEDBACK_LEVELS,
    TURN_REWARDS,
    TurnState,
    describe_objects_info,
    feedback_text,
    mask_iou_credit,
    mask_to_obs,
)
from segzero_env.envs.render import draw_overlay
from segzero_env.envs.scoring import Outcome, answer_to_info, score_replies
from segzero_env.prompts import format_prompt, get_template
from segzero_env.rewards import make_preset
from segzero_env.segmenters import Segmenter, make_segmenter

REPLY_CHARSET = string.printable
"""Characters ``action_space.sample()`` draws from. ``step`` itself accepts any ``str``."""

_IMAGE_SIZE_WHY = (
    "the observation is image_size x image_size pixels; Seg-Zero's Qwen2.5-VL uses 840, "
    "and the policy's processor caps what it reads (3584 x 3584 for Qwen2.5-VL's default max_pixels)"
)


def build_dataset(
    dataset: str | SegDataset, split: str, data_root: str | None, dataset_kwargs: Mapping[str, Any] | None
) -> SegDataset:
    """Load ``dataset`` by name (or return the given dataset object unchanged)."""
    if isinstance(dataset, str):
        return load(dataset, root=data_root, split=split, **dict(dataset_kwargs or {}))
    if dataset_kwargs:
        raise ValueError("dataset_kwargs given together with a dataset object; configure the object instead")
    return dataset


class ReasonSegEnv(gym.Env[dict[str, Any], str]):
    r"""Reasoning segmentation: read an image and a query, reply with reasoning and a box and two points.

    ## Description
    Each episode shows one image and one query ("the shape that could roll", "the object a
    person would sit on"). The policy replies in text, as a vision-language model would:
    reasoning inside ``<think></think>`` and an answer inside ``<answer></answer>`` holding one
    box and two points. The env parses the reply, maps the coordinates to the original image,
    asks a promptable segmenter (SAM2, or a CPU segmenter) for a mask, and rewards the mask's
    IoU with the ground truth together with format terms. This is the Seg-Zero task
    (arXiv 2503.06520) with the segmenter inside the step.

    ## Action Space
    ``Text(max_length=max_reply_length, charset=string.printable)``: the reply. ``step`` accepts
    ANY ``str`` (non-ASCII, empty, megabytes long) and never raises on its content; a reply it
    cannot use scores 0 on the format terms and ``info["parse_failure"]`` names why.
    The answer grammar (parsed by :func:`segzero_env.parsing.parse_reply`)::

        <think> free text </think> <answer>{"bbox": [x1, y1, x2, y2], "points_1": [x, y], "points_2": [x, y]}</answer>

    The VisionReasoner list ``[{"bbox_2d": [...], "point_2d": [x, y]}, ...]`` and Qwen2.5-VL's
    native grounding JSON are read too; several objects are segmented and their masks united.

    Refinement grammar (multi-turn episodes, ``max_turns > 1``; every key optional)::

        <answer>{"positive_points": [[x, y], ...], "negative_points": [[x, y], ...], "bbox": [x1, y1, x2, y2]}</answer>
        <answer>{"stop": true}</answer>

    Positive clicks add a region, negative clicks remove one; ``bbox`` restates the box (omitted:
    the current box stays). Clicks accumulate over the episode on the first object; a plain answer
    replaces the objects and keeps the clicks. ``{"stop": true}`` ends the episode (with clicks or
    a box, they are applied first). Every click so far goes to the segmenter with the previous
    low-res mask logits as ``mask_input`` (SAM2; GrabCut draws clicks as sure foreground /
    background; the box segmenter ignores clicks). A reply that cannot be used, and a bare stop,
    keep the current prediction. Rules in :mod:`segzero_env.envs.refinement` and
    :mod:`segzero_env.parsing`.

    ## Coordinate Frame
    Coordinates in replies are absolute pixels of the ``S x S`` observation image
    (``S = image_size``, Qwen2.5-VL's frame). The env maps them to the original ``W x H`` image
    with ``x * W / S`` and ``y * H / S`` rounded half up, clips them to the image, and segments
    there. Inverted boxes are swapped.

    ## Observation Space
    ``Dict`` with:

    - ``image``: ``Box(0, 255, (S, S, 3), uint8)``, the image resized to ``S x S`` without keeping
      the aspect ratio.
    - ``query``: ``Text(max_length=max_query_length, charset=QUERY_CHARSET)``, the query folded to
      printable ASCII (the raw query is ``info["query"]``). The space is a ``QueryText``, which
      ``AsyncVectorEnv`` with shared memory reads back correctly (a plain ``Text`` would not).

    Only when ``max_turns > 1`` (so the single-turn space is unchanged), present on EVERY turn:

    - ``prev_mask``: ``Box(0, 1, (S, S), uint8)``, the current prediction at ``S x S`` (nearest
      neighbour); all zeros before the first answer, and always with ``feedback="answer"``.
    - ``turn``: ``Discrete(max_turns + 1)``, answers scored so far (0 at reset).
    - ``prev_iou``: ``Box(0, 1, (1,), float32)``, the current prediction's IoU (0 before the first
      answer); only with ``feedback="mask-iou"``, which LEAKS the ground truth.

    ## Rewards
    Every term is computed on every step and reported in ``info["reward_terms"]``; the reward is
    ``sum(weight[t] * term[t])`` with the preset's weights (``reward_weights`` overrides them).

    | term | formula | range | mask-iou | seg-zero | vision-reasoner |
    |---|---|---|---|---|---|
    | think_format | reply matches ``<think>.*?</think>\s*<answer>.*?</answer>`` | 0/1 | 1 | 1 | 0 |
    | answer_format | strict JSON in the template's schema (Seg-Zero: bbox 4, points_1/_2 2) | 0/1 | 1 | 1 | 0 |
    | box_iou | IoU(pred box, GT box) > 0.5, inclusive pixels, S frame | 0/1 | 0 | 1 | 0 |
    | box_l1 | mean abs difference of the 4 coordinates < 10 px, S frame | 0/1 | 0 | 1 | 0 |
    | points | both points in the pred box and best-order mean distance to GT points < 100 px | 0/1 | 0 | 1 | 0 |
    | vr_format | think format + mean over objects of valid bbox_2d + valid point_2d | 0-3 | 0 | 0 | 1 |
    | vr_accuracy | Hungarian-matched [IoU>0.5]+[L1<10]+[dist<30, inside] / max(#pred, #GT) | 0-3 | 0 | 0 | 1 |
    | non_repeat | sentences of the reply repeat at most once (upstream) or never (robust); below | 0/1 | 0 | 0 | 1 |
    | mask_iou | IoU of the segmenter's mask with the GT mask (LISA rules) | 0-1 | 1 | 0 | 0 |

    Preset ranges: ``mask-iou`` 0-3 (default), ``seg-zero`` 0-5, ``vision-reasoner`` 0-7.
    ``seg-zero`` and ``vision-reasoner`` compute the terms with the ``upstream`` rules: exactly those
    projects' training rewards on the raw reply, quirks included (``docs/rewards.md`` lists each);
    ``seg-zero-robust`` and ``vision-reasoner-robust`` weight the same terms computed with the
    ``robust`` rules described here, on the parsed answer. ``non_repeat``: upstream splits the
    WHOLE reply (tags and answer included) on ``.`` only and scores 0 when 2 or more sentences
    repeat an earlier one (one repeat is tolerated, a reply with no sentence scores 1); robust
    splits the first ``<think>`` block (else the reply) on ``. ! ?`` and newlines and scores 0 on
    any repeat or when there is no sentence.

    Multi-turn (``max_turns > 1``): every term is computed on every turn for the current (merged)
    answer, and the reward is ``sum(weight[t] * term[t])`` with ``mask_iou`` replaced by its
    credit ``info["mask_iou_credit"]``, minus ``turn_cost`` on turns 2 and later.
    ``turn_reward="gain"`` credits ``iou - prev_iou`` (the IoU before the first answer is 0, so
    the credits of an episode sum to its final IoU); ``"final"`` credits the IoU on the last turn
    only. Format terms are paid every turn; from turn 2 on ``answer_format`` accepts the Seg-Zero
    answer or the refinement grammar (strict JSON).
    Ground-truth boxes and points come from the dataset, else from the mask (its extent; the
    maxima of its distance transform). On a dataset without masks ``mask_iou`` is 0 and
    ``info["mask_iou_available"]`` is False: use the ``seg-zero`` preset there.

    ## Starting State
    ``reset`` draws a sample index from the env's own RNG (``np_random``), or takes
    ``options={"sample_id": ...}`` (or ``options={"index": ...}``, a whole number).

    ## Episode End
    Single turn (``max_turns=1``, default): the episode terminates after one step
    (``terminated=True``, ``truncated=False``). Multi-turn: ``terminated=False`` while turns remain;
    ``terminated=True`` after a reply with ``"stop": true`` (at any turn, the first included) or
    after the ``max_turns``-th reply. ``truncated`` is always False.

    ## Information
    ``reset`` and ``step`` both return:

    - ``sample_id`` (str): the dataset's stable id of the sample.
    - ``query`` (str): the raw query (not folded), cut to ``max_query_length`` characters.
    - ``query_kind`` (str or None): ``"short"`` / ``"long"`` where the dataset says.
    - ``prompt`` (str): the filled-in prompt template, ready for a chat model's user turn (its
      query cut to ``max_query_length`` characters, as in the observation).
    - ``orig_height``, ``orig_width`` (int): the original image size.
    - ``image_size`` (int): ``S``.
    - ``gt_box`` (list or None): the ground-truth box in the ``S`` frame (for oracle baselines).
    - ``gt_points`` (list or None): the ground-truth points in the ``S`` frame.
    - ``no_target`` (bool): the query names nothing in the image (gRefCOCO, shapes level 4); the
      right answer is the empty one (``<answer>[]</answer>``) and the ground-truth mask is empty.
    - ``gt_objects`` (list): every target as ``{"box", "points"}`` in the ``S`` frame: one per target
      when the sample has several (gRefCOCO, shapes level 4), else ``gt_box`` / ``gt_points``; empty
      without a target.
    - ``gt_mask`` (``S x S`` uint8 0/1/255): the ground-truth mask, only with
      ``expose_gt_mask=True`` (for oracle refinement policies; zeros without a mask).

    Multi-turn only (``max_turns > 1``), on ``reset`` and ``step``:

    - ``turn`` (int): answers scored so far; ``max_turns`` (int).
    - ``feedback`` (str): the text rendering of the current prediction for language policies
      ("" before the first answer): the turn, the current answer, the mask's share of the image,
      its box and an 8 x 8 occupancy map, the refinement grammar, and the IoU only with
      ``feedback="mask-iou"``. ``prompt`` is the template followed by this text.
    - ``feedback_level`` (str) and ``feedback_leaks_gt`` (bool): whether the observation and the
      feedback text carry the IoU (a ground-truth leak, for curriculum studies only).
    - ``iou_history`` (list of float): the IoU after each scored turn.
    - ``current_answer`` (list): the merged answer, ``{"box", "points", "negative_points"}`` per object.

    ``step`` adds:

    - ``reward_terms`` (dict[str, float]): every term above, whatever its weight.
    - ``reward_weights`` (dict[str, float]): the weights in force.
    - ``reward_preset`` (str): the preset's name.
    - ``iou`` (float): LISA IoU of the predicted mask (1.0 when prediction and GT are both empty).
    - ``intersection``, ``union`` (int): its pixel counts (ignore pixels removed), for cIoU.
    - ``mask_iou_available`` (bool): whether the sample has a ground-truth mask.
    - ``parse_failure`` (str or None): a :class:`~segzero_env.types.FailureReason` value.
    - ``parse_detail`` (str): a human-readable explanation.
    - ``answer`` (dict): the parsed answer in the ``S`` frame: ``schema`` (None when the reply has no
      readable answer), ``no_object`` (True for the empty answer ``[]``: nothing in the image fits the
      query) and ``objects`` (a list of ``{"box": [x1, y1, x2, y2], "points": [[x, y], ...]}``).

    - multi-turn only: ``prev_iou`` (float, IoU before this turn), ``iou_gain`` (``iou - prev_iou``),
      ``mask_iou_credit`` (what ``mask_iou`` was paid at), ``turn_cost`` (the cost subtracted),
      ``stopped`` (bool, the reply asked to stop).

    The predicted mask is ``env.unwrapped.last_pred_mask`` (not in ``info``, to keep it light).

    ## Arguments
    - ``dataset``: a name for :func:`segzero_env.datasets.load` (``"shapes"``, ``"reasonseg"``, ...)
      or a dataset object.
    - ``split``: the split to load.
    - ``data_root``: folder holding the data (default: the dataset's documented location).
    - ``dataset_kwargs``: extra keyword arguments for the loader (``level``, ``size``, ...).
    - ``segmenter``: ``"grabcut"``, ``"box"``, ``"sam2"``, ``"module:Class"`` or an instance.
    - ``segmenter_kwargs``: keyword arguments for the segmenter.
    - ``reward``: preset name, ``"mask-iou"`` (default), ``"seg-zero"``, ``"vision-reasoner"`` (both
      exactly upstream's rewards), ``"seg-zero-robust"`` or ``"vision-reasoner-robust"``.
    - ``reward_weights``: per-term weight overrides.
    - ``prompt_template``: ``"seg-zero"``, ``"vision-reasoner"`` or a custom text with a ``{query}`` slot.
    - ``image_size``: ``S``, the observation side (default 840, a multiple of 28; 28 to
      :data:`MAX_IMAGE_SIZE`).
    - ``max_query_length``: the ``query`` Text space's maximum length; queries are cut to it in
      ``info["query"]`` and ``info["prompt"]`` too.
    - ``max_reply_length``: the action Text space's maximum length (``step`` accepts longer).
    - ``render_mode``: ``None``, ``"rgb_array"`` or ``"human"``. A frame is the image (long side
      scaled into 480-640 px) with the ground truth, prediction, box and points drawn on it, and
      under it the query, the IoU and a legend; its size stays the same through an episode.
    - ``max_turns``: answers per episode (default 1: the single-turn task, unchanged). Above 1,
      refinement turns follow the first answer.
    - ``feedback``: ``"mask"`` (default; the policy sees its mask, no ground-truth leak),
      ``"mask-iou"`` (also its IoU: LEAKS the ground truth; ``info["feedback_leaks_gt"]`` says so) or
      ``"answer"`` (its previous answer only: ``prev_mask`` stays zeros and the feedback text does not
      describe the mask; the ablation that measures what seeing the mask adds). The segmenter still
      gets the previous turn's logits as ``mask_input`` in every level.
    - ``turn_reward``: ``"gain"`` (default; IoU gain per turn, the return telescopes to the final
      IoU) or ``"final"`` (the IoU on the last turn only).
    - ``turn_cost``: subtracted from the reward of every turn after the first (default 0).
    - ``expose_gt_mask``: put the ``S x S`` ground-truth mask in ``info["gt_mask"]`` (oracle policies).

    ## Version History
    - v0: initial release; multi-turn refinement added behind ``max_turns`` (default 1 keeps
      single-turn episodes, spaces, rewards and info exactly as before).
    """

    metadata = {"render_modes": ["rgb_array", "human"], "render_fps": 1}

    def __init__(
        self,
        dataset: str | SegDataset = "shapes",
        split: str = "train",
        data_root: str | None = None,
        dataset_kwargs: Mapping[str, Any] | None = None,
        segmenter: str | Segmenter = "grabcut",
        segmenter_kwargs: Mapping[str, Any] | None = None,
        reward: str = "mask-iou",
        reward_weights: Mapping[str, float] | None = None,
        prompt_template: str = "seg-zero",
        image_size: int = 840,
        max_query_length: int = 2048,
        max_reply_length: int = 8192,
        render_mode: str | None = None,
        max_turns: int = 1,
        feedback: str = "mask",
        turn_reward: str = "gain",
        turn_cost: float = 0.0,
        expose_gt_mask: bool = False,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode {render_mode!r} is not one of {self.metadata['render_modes']}")
        image_size = whole_number("image_size", image_size, minimum=28, maximum=MAX_IMAGE_SIZE, why=_IMAGE_SIZE_WHY)
        max_turns = whole_number("max_turns", max_turns, minimum=1, why="1 is the single-turn task")
        max_query_length = whole_number("max_query_length", max_query_length, minimum=1)
        max_reply_length = whole_number("max_reply_length", max_reply_length, minimum=1)
        turn_cost = finite_number("turn_cost", turn_cost)
        keyword_mapping("dataset_kwargs", dataset_kwargs, '{"level": 3}')
        keyword_mapping("segmenter_kwargs", segmenter_kwargs, '{"model": "tiny"}')
        keyword_mapping("reward_weights", reward_weights, '{"think_format": 0.0}')
        if feedback not in FEEDBACK_LEVELS:
            raise ValueError(f"feedback must be one of {FEEDBACK_LEVELS} ('mask-iou' leaks the IoU), got {feedback!r}")
        if turn_reward not in TURN_REWARDS:
            raise ValueError(f"turn_reward must be one of {TURN_REWARDS}, got {turn_reward!r}")
        self.max_turns = max_turns
        self.feedback = feedback
        self.turn_reward = turn_reward
        self.turn_cost = turn_cost
        self.expose_gt_mask = bool(expose_gt_mask)
        self.dataset = build_dataset(dataset, split, data_root, dataset_kwargs)
        if len(self.dataset) == 0:
            from segzero_env.datasets.layouts import empty_split_error

            source = getattr(self.dataset, "folder", None) or getattr(self.dataset, "source", None) or data_root
            name = str(getattr(self.dataset, "name", dataset))
            raise empty_split_error(name, split, str(source or "the dataset given"))
        self.segmenter = make_segmenter(segmenter, **dict(segmenter_kwargs or {}))
        self.preset = make_preset(reward, reward_weights)
        self.template = get_template(prompt_template)
        self.image_size = image_size
        self.max_query_length = max_query_length
        self.render_mode = render_mode
        self.reward_range = self.preset.reward_range
        obs_spaces: dict[str, spaces.Space] = {
            "image": spaces.Box(0, 255, (self.image_size, self.image_size, 3), np.uint8),
            "query": QueryText(max_length=self.max_query_length, min_length=0, charset=QUERY_CHARSET),
        }
        if self.max_turns > 1:
            obs_spaces["prev_mask"] = spaces.Box(0, 1, (self.image_size, self.image_size), np.uint8)
            obs_spaces["turn"] = spaces.Discrete(self.max_turns + 1)
            if self.feedback == "mask-iou":
                obs_spaces["prev_iou"] = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Dict(obs_spaces)
        self.action_space = spaces.Text(max_length=max_reply_length, min_length=0, charset=REPLY_CHARSET)
        self.episode: Episode | None = None
        self.last_outcome: Outcome | None = None
        self.turn_state = TurnState()
        self._terminated = False

    @property
    def multi_turn(self) -> bool:
        """Whether episodes have refinement turns (``max_turns > 1``)."""
        return self.max_turns > 1

    @property
    def turn_states(self) -> list[TurnState] | None:
        """``[turn_state]`` for :func:`~segzero_env.envs.scoring.score_replies` in multi-turn mode, else ``None``."""
        return [self.turn_state] if self.multi_turn else None

    @property
    def current_sample(self):  # noqa: ANN201 - Sample, imported lazily by users
        """The current :class:`~segzero_env.types.Sample` (original frame), or ``None`` before ``reset``."""
        return None if self.episode is None else self.episode.sample

    @property
    def last_pred_mask(self) -> np.ndarray | None:
        """The last step's predicted mask (``H x W`` bool, original frame), ``None`` if unusable or not stepped."""
        return None if self.last_outcome is None else self.last_outcome.pred_mask

    def _sample_index(self, options: Mapping[str, Any] | None) -> int:
        options = options or {}
        if "sample_id" in options:
            return self.dataset.index_of(str(options["sample_id"]))
        if "index" in options:
            index = whole_number("options['index']", options["index"])
            if not 0 <= index < len(self.dataset):
                raise IndexError(f"options['index']={index} is outside the dataset (0..{len(self.dataset) - 1})")
            return index
        return int(self.np_random.integers(len(self.dataset)))

    def reset_rng(self, seed: int | None) -> None:
        """Seed ``np_random`` as ``reset(seed=...)`` would, without drawing a sample."""
        super().reset(seed=seed)

    def begin_episode(self, episode: Episode) -> tuple[dict[str, Any], dict[str, Any]]:
        """Start an episode on a prepared :class:`Episode` (used by ``reset`` and the group vector env)."""
        self.episode = episode
        self.last_outcome = None
        self.turn_state = TurnState()
        self._terminated = False
        return self._observation(), self.episode_info(episode)

    def episode_info(self, episode: Episode) -> dict[str, Any]:
        """The info keys shared by ``reset`` and ``step`` (multi-turn: with the current turn's feedback)."""
        sample = episode.sample
        query = sample.query[: self.max_query_length]
        info = {
            "sample_id": sample.sample_id,
            "query": query,
            "query_kind": sample.query_kind,
            "prompt": format_prompt(self.template, query),
            "orig_height": sample.height,
            "orig_width": sample.width,
            "image_size": self.image_size,
            "gt_box": None if episode.gt_box is None else [float(v) for v in episode.gt_box],
            "gt_points": None if episode.gt_points is None else [[float(x), float(y)] for x, y in episode.gt_points],
            "no_target": episode.no_target,
            "gt_objects": _gt_objects_info(episode),
        }
        if self.expose_gt_mask:
            info["gt_mask"] = self._gt_mask_obs(episode)
        if self.multi_turn:
            state = self.turn_state
            text = feedback_text(state, self.max_turns, self.feedback)
            if text:
                info["prompt"] = f"{info['prompt']}\n\n{text}"
            info.update(
                turn=state.turn,
                max_turns=self.max_turns,
                feedback=text,
                feedback_level=self.feedback,
                feedback_leaks_gt=self.feedback == "mask-iou",
                iou_history=list(state.iou_history),
                current_answer=describe_objects_info(state.objects),
            )
        return info

    def _gt_mask_obs(self, episode: Episode) -> np.ndarray:
        """The ground-truth mask at ``S x S`` (uint8 0/1/255, nearest neighbour; zeros without a mask)."""
        return mask_to_obs(episode.sample.mask, self.image_size)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Pick a sample (from ``np_random``, or ``options["sample_id"]`` / ``options["index"]``) and show it."""
        super().reset(seed=seed)
        sample = self.dataset[self._sample_index(options)]
        return self.begin_episode(make_episode(sample, self.image_size, self.max_query_length))

    def _observation(self) -> dict[str, Any]:
        assert self.episode is not None
        obs: dict[str, Any] = {"image": self.episode.image_obs.copy(), "query": self.episode.query_obs}
        if self.multi_turn:
            state = self.turn_state
            shown = state.mask_obs if self.feedback != "answer" else None
            obs["prev_mask"] = shown.copy() if shown is not None else mask_to_obs(None, self.image_size)
            obs["turn"] = np.int64(state.turn)
            if self.feedback == "mask-iou":
                obs["prev_iou"] = np.array([state.iou], dtype=np.float32)
        return obs

    def step_info(self, outcome: Outcome) -> dict[str, Any]:
        """The info dict of a scored step."""
        assert self.episode is not None
        info = self.episode_info(self.episode)
        info.update(
            reward_terms=dict(outcome.terms),
            reward_weights=dict(self.preset.weights),
            reward_preset=self.preset.name,
            iou=outcome.iou,
            intersection=outcome.intersection,
            union=outcome.union,
            mask_iou_available=self.episode.sample.mask is not None,
            parse_failure=None if outcome.parsed.failure is None else outcome.parsed.failure.value,
            parse_detail=outcome.parsed.detail,
            answer=answer_to_info(outcome.parsed),
        )
        return info

    def finish_step(self, outcome: Outcome) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Record a scored reply and build ``step``'s return value (used by the group vector env too)."""
        self.last_outcome = outcome
        if not self.multi_turn:
            self._terminated = True
            if self.render_mode == "human":
                self.render()
            return self._observation(), float(outcome.reward), True, False, self.step_info(outcome)
        previous = self.turn_state
        turn = previous.turn + 1
        done = outcome.parsed.stop or turn >= self.max_turns
        iou = outcome.iou
        self.turn_state = TurnState(
            turn=turn,
            objects=outcome.parsed.objects if outcome.parsed.ok else previous.objects,
            logits=outcome.logits,
            prompts=outcome.prompts,
            pred_mask=outcome.pred_mask,
            mask_obs=mask_to_obs(outcome.pred_mask, self.image_size),
            iou=iou,
            iou_history=(*previous.iou_history, iou),
        )
        credit = mask_iou_credit(self.turn_reward, iou, previous.iou, done)
        cost = self.turn_cost if turn > 1 else 0.0
        reward = self.preset.combine({**outcome.terms, "mask_iou": credit}) - cost
        self._terminated = done
        if self.render_mode == "human":
            self.render()
        info = self.step_info(outcome)
        info.update(
            prev_iou=previous.iou,
            iou_gain=iou - previous.iou,
            mask_iou_credit=credit,
            turn_cost=cost,
            stopped=bool(outcome.parsed.stop),
        )
        return self._observation(), float(reward), done, False, info

    def step(self, action: str) -> tuple[dict[str, Any], float, bool, bool, dict[str, Any]]:
        """Score the reply ``action``; never raises on its content."""
        if self.episode is None:
            raise RuntimeError("step() called before reset(); call env.reset() first")
        if self._terminated:
            raise RuntimeError("step() called on a finished episode; call env.reset() to start the next one")
        (outcome,) = score_replies(
            [self.episode], [action], self.segmenter, self.preset, self.turn_states, self.template.schema
        )
        return self.finish_step(outcome)

    def render(self) -> np.ndarray | None:
        """Draw the image with the GT mask, predicted mask, box, points, query, IoU and legend (see ``envs.render``)."""
        if self.render_mode is None:
            gym.logger.warn("render() called without a render_mode; pass render_mode='rgb_array' to gym.make")
            return None
        if self.episode is None:
            raise RuntimeError("render() called before reset()")
        outcome = self.last_outcome
        frame = draw_overlay(
            self.episode.sample.image,
            self.episode.sample.query,
            gt_mask=self.episode.sample.mask,
            pred_mask=None if outcome is None else outcome.pred_mask,
            prompts=() if outcome is None else outcome.prompts,
            iou=None if outcome is None else outcome.iou,
        )
        if self.render_mode == "rgb_array":
            return frame
        self._show(frame)
        return None

    def _show(self, frame: np.ndarray) -> None:
        import matplotlib.pyplot as plt

        if getattr(self, "_figure", None) is None:
            plt.ion()
            self._figure, self._axes = plt.subplots()
            self._axes.axis("off")
        self._axes.clear()
        self._axes.imshow(frame)
        self._axes.axis("off")
        plt.pause(1.0 / self.metadata["render_fps"] / 10)

    def close(self) -> None:
        """Release the segmenter and any window."""
        close = getattr(self.segmenter, "close", None)
        if callable(close):
            close()
        if getattr(self, "_figure", None) is not None:
            import matplotlib.pyplot as plt

            plt.close(self._figure)
            self._figure = None


def _gt_objects_info(episode: Episode) -> list[dict[str, Any]]:
    """Every target as plain data for ``info["gt_objects"]`` (S frame)."""
    if episode.gt_objects is not None:
        objects = [(o.box, o.points) for o in episode.gt_objects]
    elif episode.gt_box is not None and not episode.no_target:
        objects = [(episode.gt_box, episode.gt_points or ())]
    else:
        objects = []
    return [
        {"box": [float(v) for v in box], "points": [[float(x), float(y)] for x, y in points]} for box, points in objects
    ]
