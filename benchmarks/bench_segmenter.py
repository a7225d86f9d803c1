"""Group stepping against the naive loop, over the same replies, in one run.

(a) naive: for every reply, a fresh ``set_image`` + ``predict`` (best of three masks), as
    Seg-Zero's evaluation does. (b) this backend through the group vector env: one
    ``envs.step(replies)`` over ``group x images`` sub-envs (parse, segment, reward), which
    encodes each image once and decodes its ``group`` prompts in one call.

The bound is what (b) cannot beat: ``t_encode x images + t_batched_decode x images``, timed on
the backend alone after (b): ``t_batched_decode`` is one decoder call for a group on a cached
image, ``t_encode`` an uncached call minus that. ``fraction_of_bound`` = bound / (b) (1.0: the
env adds nothing to the segmenter's own work); ``speedup`` = (a) / (b). ``naive_set_image_s`` is
the mean ``set_image`` time inside (a), for reference.
The last printed line is one JSON object.

    python benchmarks/bench_segmenter.py --backend sam2 --model tiny --random-weights --group 8 --images 2
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

import segzero_env  # noqa: F401  (registers the ids)
from segzero_env.answers import format_reply
from segzero_env.envs.scoring import answer_to_prompts
from segzero_env.parsing import parse_reply
from segzero_env.types import Prompt


@dataclass
class Args:
    backend: str = "sam2"
    """Segmenter name: sam2 (with the naive set_image + predict loop as baseline), box or grabcut."""
    model: str = "tiny"
    """SAM2 size: tiny, small, base+, large."""
    version: str = "2.1"
    """SAM2 release."""
    random_weights: bool = False
    """Untrained network (no checkpoint needed; same compute)."""
    checkpoint: str | None = None
    """Explicit SAM2 checkpoint file."""
    group: int = 8
    """Replies per image (GRPO group size)."""
    images: int = 2
    """Distinct images per step."""
    device: str = "auto"
    """Torch device."""
    threads: int = 0
    """torch.set_num_threads (0 keeps torch's default)."""
    seed: int = 0
    """Reset seed and reply jitter seed."""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Args()
    parser.add_argument("--backend", default=defaults.backend, choices=["sam2", "box", "grabcut"])
    parser.add_argument("--model", default=defaults.model)
    parser.add_argument("--version", default=defaults.version)
    parser.add_argument("--random-weights", action="store_true")
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("--group", type=int, default=defaults.group)
    parser.add_argument("--images", type=int, default=defaults.images)
    parser.add_argument("--device", default=defaults.device)
    parser.add_argument("--threads", type=int, default=defaults.threads)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    return Args(**vars(parser.parse_args()))


def jittered_replies(envs, seed: int) -> list[str]:
    """One Seg-Zero reply per sub-env: the ground-truth box and points moved by a few pixels."""
    rng = np.random.default_rng(seed)
    replies = []
    for env in envs.unwrapped.envs:
        episode = env.episode
        size = episode.image_size
        box = np.clip(np.asarray(episode.gt_box) + rng.normal(0, 0.02 * size, 4), 0, size - 1)
        box = [min(box[0], box[2]), min(box[1], box[3]), max(box[0], box[2]), max(box[1], box[3])]
        jitter = rng.normal(0, 0.01 * size, (len(episode.gt_points), 2))
        points = np.clip(np.asarray(episode.gt_points) + jitter, 0, size - 1).tolist()
        replies.append(format_reply(box=[round(v) for v in box], points=[[round(v) for v in p] for p in points[:2]]))
    return replies


def sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def naive_sam2(segmenter, episodes, replies) -> tuple[float, list[float], list[np.ndarray]]:
    """Fresh set_image + predict for every reply; returns total time, the encode times and the masks."""
    from sam2.sam2_image_predictor import SAM2ImagePredictor

    predictor = SAM2ImagePredictor(segmenter.model)
    encode_times, masks = [], []
    start = time.perf_counter()
    with segmenter.inference_context():
        for episode, reply in zip(episodes, replies, strict=True):
            prompts = answer_to_prompts(parse_reply(reply), episode)
            t0 = time.perf_counter()
            predictor.set_image(episode.sample.image)
            sync(segmenter.device)
            encode_times.append(time.perf_counter() - t0)
            union = np.zeros(episode.sample.image.shape[:2], dtype=bool)
            for p in prompts:
                out, scores, _ = predictor.predict(p.points, p.point_labels, np.asarray(p.box), multimask_output=True)
                union |= out[int(np.argmax(scores))] > 0
            masks.append(union)
    sync(segmenter.device)
    return time.perf_counter() - start, encode_times, masks


def naive_cpu(segmenter, episodes, replies) -> tuple[float, list[float], list[np.ndarray]]:
    start = time.perf_counter()
    masks = []
    for episode, reply in zip(episodes, replies, strict=True):
        prompts = answer_to_prompts(parse_reply(reply), episode)
        masks.append(np.any(segmenter.segment(episode.sample.image, prompts), axis=0))
    return time.perf_counter() - start, [], masks


def main() -> None:
    args = parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    seg_kwargs: dict = {}
    if args.backend == "sam2":
        seg_kwargs = {"model": args.model, "version": args.version, "device": args.device}
        if args.random_weights:
            seg_kwargs["random_weights"] = True
        if args.checkpoint:
            seg_kwargs["checkpoint"] = args.checkpoint
    n = args.group * args.images
    envs = gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=n,
        vectorization_mode="vector_entry_point",
        group_size=args.group,
        autoreset_mode="Disabled",  # one explicit reset, one step: the step's info stays top-level
        segmenter=args.backend,
        segmenter_kwargs=seg_kwargs,
    )
    envs.reset(seed=args.seed)
    segmenter = envs.unwrapped.segmenter
    episodes = [env.episode for env in envs.unwrapped.envs]
    replies = jittered_replies(envs, args.seed)
    device = getattr(segmenter, "device", "cpu")
    print(f"backend={args.backend} segmenter={segmenter!r} group={args.group} images={args.images} device={device}")

    if args.backend == "sam2":
        # Warm-up on an unrelated image so neither path pays first-call costs.
        warm = np.full((64, 64, 3), 127, np.uint8)
        segmenter.segment(warm, [Prompt(box=(8, 8, 40, 40), points=np.zeros((0, 2)), point_labels=np.zeros(0))])
        segmenter.cache.clear()
        naive_s, encode_times, naive_masks = naive_sam2(segmenter, episodes, replies)
    else:
        naive_s, encode_times, naive_masks = naive_cpu(segmenter, episodes, replies)
    print(f"(a) naive loop: {naive_s:.3f} s for {n} replies")

    encodes_before = getattr(segmenter, "encode_calls", 0)
    sync(device)
    start = time.perf_counter()
    _, rewards, _, _, infos = envs.step(replies)
    sync(device)
    grouped_s = time.perf_counter() - start
    grouped_masks = envs.unwrapped.last_pred_masks
    encodes = getattr(segmenter, "encode_calls", 0) - encodes_before
    print(f"(b) group vector env step: {grouped_s:.3f} s for {n} replies ({encodes} encoder images)")
    agree = float(np.mean([(a == b).mean() for a, b in zip(naive_masks, grouped_masks, strict=True)]))
    print(f"pixel agreement between (a) and (b) masks: {agree:.6f}; mean IoU reward {float(np.mean(infos['iou'])):.4f}")

    result = {
        "backend": args.backend,
        "device": device,
        "group": args.group,
        "images": args.images,
        "naive_s": round(naive_s, 4),
        "grouped_s": round(grouped_s, 4),
        "speedup": round(naive_s / grouped_s, 3),
        "mask_agreement": round(agree, 6),
    }
    if args.backend == "sam2":
        # The bound is measured on the backend alone, after (b): per image, one uncached call
        # (encode + one batched decode) and one cached call (decode only).
        full_times, decode_times = [], []
        for block in range(args.images):
            members = range(block * args.group, (block + 1) * args.group)
            prompts = [p for i in members for p in answer_to_prompts(parse_reply(replies[i]), episodes[i])]
            sample = episodes[block * args.group].sample
            segmenter.cache.clear()
            for times in (full_times, decode_times):
                sync(device)
                t0 = time.perf_counter()
                segmenter.segment(sample.image, prompts, sample.sample_id)
                sync(device)
                times.append(time.perf_counter() - t0)
        decode_s = float(np.mean(decode_times))
        encode_s = float(np.mean(full_times)) - decode_s
        result["naive_set_image_s"] = round(float(np.mean(encode_times)), 4)
        bound = (encode_s + decode_s) * args.images
        result.update(
            model=segmenter.spec.size,
            version=segmenter.spec.version,
            dtype=segmenter.dtype,
            random_weights=args.random_weights,
            encode_s=round(encode_s, 4),
            decode_s=round(decode_s, 4),
            bound_s=round(bound, 4),
            fraction_of_bound=round(bound / grouped_s, 3),
            encoder_images_in_b=encodes,
            bytes_per_cached_image=segmenter.cache.current_bytes // max(1, len(segmenter.cache)),
        )
    envs.close()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
