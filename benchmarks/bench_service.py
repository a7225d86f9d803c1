"""The scoring service against the in-process group vector env, over the same replies, in one run.

(a) in process: one ``GroupVectorEnv`` step over ``clients x group`` sub-envs (each block of
    ``group`` shares one image): every image encoded once, its replies decoded together. This is
    the bound: the same segmenter work with no transport at all.
(b) the service: a local Ray cluster runs ``segzero serve``'s application (one scorer replica
    with ``--replica-cpus`` CPUs); ``clients`` threads each POST the ``group`` replies of one
    image to ``/score`` at the same moment (``--clients-per-image`` > 1 makes several clients
    ask about the same image, as several trainers would).

Rounds alternate (a) and (b) on fresh images, so load drift on a shared machine hits both.
Printed: replies/s of each, the service's fraction of the in-process throughput, p50 / p99
request latency of (b), and the service's encoder calls per distinct image (from ``/metrics``).
The last printed line is one JSON object.

    python benchmarks/bench_service.py --clients 8 --group 8 --model tiny --random-weights --rounds 2
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import threading
import time
import urllib.request
from dataclasses import asdict, dataclass

import gymnasium as gym
import numpy as np

import segzero_env  # noqa: F401  (registers the ids)
from segzero_env.answers import format_reply


@dataclass
class Args:
    clients: int = 8
    """Concurrent clients (C)."""
    group: int = 8
    """Replies per request: the G replies of one image."""
    clients_per_image: int = 1
    """Clients asking about the same image (C must be a multiple)."""
    rounds: int = 2
    """Measured rounds of each kind (after one warm-up round of each)."""
    model: str = "tiny"
    """SAM2 size."""
    random_weights: bool = False
    """Untrained SAM2 (no checkpoint needed; same compute)."""
    device: str = "cpu"
    """Torch device of both sides."""
    replica_cpus: int = 0
    """CPUs of the scorer replica (torch threads follow them); 0: all cores, as in process."""
    replica_gpus: float = 0.0
    """GPUs of the scorer replica."""
    image_size: int = 840
    """The env's S."""
    seed: int = 0
    """Reply jitter seed."""


def parse_args() -> Args:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Args()
    for name, value in asdict(defaults).items():
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            parser.add_argument(flag, action="store_true")
        else:
            parser.add_argument(flag, type=type(value), default=value)
    return Args(**vars(parser.parse_args()))


def replies_for(env, sample_id: str, group: int, rng: np.random.Generator) -> list[str]:
    """``group`` Seg-Zero replies: the ground-truth box and points moved by a few pixels."""
    _, info = env.reset(options={"sample_id": sample_id})
    out = []
    for _ in range(group):
        box = np.asarray(info["gt_box"]) + rng.integers(-12, 13, 4)
        points = np.asarray(info["gt_points"]) + rng.integers(-8, 9, (2, 2))
        out.append(format_reply(box=box.tolist(), points=points.tolist()))
    return out


def metric(url: str, name: str) -> float:
    text = urllib.request.urlopen(url + "/metrics", timeout=60).read().decode()
    return sum(float(line.split()[-1]) for line in text.splitlines() if line.startswith(name))


def main() -> None:
    args = parse_args()
    if args.clients % args.clients_per_image:
        raise SystemExit("--clients must be a multiple of --clients-per-image")
    import ray
    from ray import serve

    from segzero_env.service.app import build_app
    from segzero_env.service.client import ScorerClient
    from segzero_env.service.config import ServiceConfig

    sam2 = {"model": args.model, "random_weights": args.random_weights, "device": args.device}
    env_kwargs = {"segmenter": "sam2", "segmenter_kwargs": sam2, "image_size": args.image_size}
    images = args.clients // args.clients_per_image
    cores = os.cpu_count() or 1
    replica_cpus = args.replica_cpus or cores

    # (a) the in-process group vector env: one block of `group` per client (blocks may share an image)
    envs = gym.make_vec(
        "ReasonSegShapes-v0",
        num_envs=args.clients * args.group,
        vectorization_mode="vector_entry_point",
        group_size=args.group,
        **env_kwargs,
    )
    labeller = envs.unwrapped.envs[0]
    rng = np.random.default_rng(args.seed)
    ids = list(labeller.dataset.sample_ids)

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ray.init(num_cpus=max(cores, replica_cpus), include_dashboard=False, log_to_driver=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    config = ServiceConfig(
        env_id="ReasonSegShapes-v0",
        env_kwargs=env_kwargs,
        num_cpus=replica_cpus,
        num_gpus=args.replica_gpus,
        port=port,
        max_batch_size=max(64, args.clients),
        batch_wait_timeout_s=0.01,
    )
    serve.run(build_app(config), name="bench", route_prefix="/")
    url = f"http://127.0.0.1:{port}"

    next_id = iter(range(len(ids)))
    inproc_s, service_s, latencies = 0.0, 0.0, []
    encodes, distinct = 0.0, 0
    try:
        for round_index in range(args.rounds + 1):
            measured = round_index > 0
            # (a)
            image_ids = [ids[next(next_id)] for _ in range(images)]
            block_ids = [s for s in image_ids for _ in range(args.clients_per_image)]
            group_replies = [replies_for(labeller, s, args.group, rng) for s in block_ids]
            envs.reset(options={"sample_ids": block_ids})
            start = time.perf_counter()
            envs.step([r for replies in group_replies for r in replies])
            if measured:
                inproc_s += time.perf_counter() - start
            # (b) fresh images, each asked about by `clients_per_image` clients
            block_ids = [ids[next(next_id)] for _ in range(images)]
            requests = [
                [{"sample_id": s, "reply": r} for r in replies_for(labeller, s, args.group, rng)]
                for s in block_ids
                for _ in range(args.clients_per_image)
            ]
            before = metric(url, "segzero_scorer_encode_calls_total")
            times: list[float] = [0.0] * len(requests)
            barrier = threading.Barrier(len(requests))

            def work(i: int, items: list, times: list = times, barrier: threading.Barrier = barrier) -> None:
                client = ScorerClient(url, timeout_s=3600)
                barrier.wait()
                t0 = time.perf_counter()
                client.score(items)
                times[i] = time.perf_counter() - t0

            threads = [threading.Thread(target=work, args=(i, items)) for i, items in enumerate(requests)]
            start = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - start
            if measured:
                service_s += elapsed
                latencies += times
                encodes += metric(url, "segzero_scorer_encode_calls_total") - before
                distinct += images
            print(f"round {round_index}{'' if measured else ' (warm-up)'}: service {elapsed:.2f} s", flush=True)
    finally:
        serve.shutdown()
        ray.shutdown()
        envs.close()

    inproc_rate = args.rounds * args.clients * args.group / inproc_s
    service_rate = args.rounds * args.clients * args.group / service_s
    result = {
        "clients": args.clients,
        "group": args.group,
        "clients_per_image": args.clients_per_image,
        "rounds": args.rounds,
        "model": args.model,
        "device": args.device,
        "replica_cpus": replica_cpus,
        "cores": cores,
        "inprocess_replies_per_s": round(inproc_rate, 3),
        "service_replies_per_s": round(service_rate, 3),
        "fraction_of_inprocess": round(service_rate / inproc_rate, 3),
        "latency_p50_s": round(float(np.percentile(latencies, 50)), 3),
        "latency_p99_s": round(float(np.percentile(latencies, 99)), 3),
        "encoder_calls_per_distinct_image": round(encodes / distinct, 3),
    }
    print(
        f"in process: {inproc_rate:.2f} replies/s; service: {service_rate:.2f} replies/s "
        f"({result['fraction_of_inprocess']:.2f} of in process)"
    )
    print(
        f"latency p50 {result['latency_p50_s']} s, p99 {result['latency_p99_s']} s; "
        f"encoder calls per distinct image {result['encoder_calls_per_distinct_image']}"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
