"""``segzero serve`` as a user runs it: a subprocess on 127.0.0.1, scored through the client and an env.

The test starts the command itself, waits for the line it prints once it is up, checks
``/health``, scores through :class:`ScorerClient` and through ``gym.make(..., segmenter=URL)``,
then stops it with SIGTERM sent to the pid it started, and checks that the command shut its Ray
cluster down (no process it started is left).
"""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("ray.serve")
psutil = pytest.importorskip("psutil")

from local_ports import free_port  # noqa: E402

import segzero_env  # noqa: E402, F401
from segzero_env.answers import format_reply  # noqa: E402
from segzero_env.service.client import ScorerClient, ServiceError  # noqa: E402

TOKEN = "cli-token"
ENV_KWARGS = {"segmenter": "box", "image_size": 56}


@pytest.fixture(scope="module")
def served():
    port = free_port()
    cmd = [
        sys.executable, "-m", "segzero_env.cli", "serve",
        "--env-kwargs", "segmenter=box", "image_size=56",
        "--num-cpus", "0", "--host", "127.0.0.1", "--port", str(port), "--token-env", "SEGZERO_TEST_TOKEN",
    ]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}  # a cluster of its own
    env.update(SEGZERO_TEST_TOKEN=TOKEN, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()  # the command prints its URL once it is up and handles SIGTERM

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("segzero scoring service: http://"):
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 150
        while not ready.wait(0.5):
            if proc.poll() is not None:
                pytest.fail(f"segzero serve exited with {proc.returncode}:\n{''.join(lines)[-3000:]}")
            assert time.monotonic() < deadline, f"segzero serve not up in 150 s:\n{''.join(lines)[-3000:]}"
        assert ScorerClient(url, token=TOKEN).health()["status"] == "ok"
        descendants = psutil.Process(proc.pid).children(recursive=True)
        yield {"url": url, "proc": proc, "descendants": descendants, "lines": lines}
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the process this test started, by its id
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=30)


@pytest.fixture(scope="module")
def local_env():
    return gym.make("ReasonSegShapes-v0", **ENV_KWARGS).unwrapped


def _expected(env, sample_id: str, reply: str) -> tuple[float, dict, float]:
    env.reset(options={"sample_id": sample_id})
    _, reward, _, _, info = env.step(reply)
    return reward, info["reward_terms"], info["iou"]


def _replies(env, sample_id: str) -> list[str]:
    _, info = env.reset(options={"sample_id": sample_id})
    box = np.asarray(info["gt_box"]) + np.array([-3, 2, 4, -1])
    return ["no answer", format_reply(box=box.tolist(), points=info["gt_points"])]


def test_health_reports_the_served_env(served):
    health = ScorerClient(served["url"], token=TOKEN).health()
    assert health["env"]["segmenter"] == "box" and health["env"]["image_size"] == 56


def test_the_client_scores_like_the_in_process_env(served, local_env):
    client = ScorerClient(served["url"], token=TOKEN)
    ids = list(local_env.dataset.sample_ids[:3])
    items = [{"sample_id": s, "reply": r} for s in ids for r in _replies(local_env, s)]
    results = client.score(items)
    for item, result in zip(items, results, strict=True):
        reward, terms, iou = _expected(local_env, item["sample_id"], item["reply"])
        assert (result["reward"], result["terms"], result["iou"]) == (reward, terms, iou)
    assert results[0]["parse_failure"] == "no_answer_tag" and results[1]["parse_failure"] is None


def test_the_token_is_required(served):
    with pytest.raises(ServiceError, match="refused the token"):
        ScorerClient(served["url"], retries=0).score([{"sample_id": "x", "reply": "r"}])


def test_an_env_with_the_url_as_segmenter_scores_like_the_in_process_env(served, local_env):
    env = gym.make("ReasonSegShapes-v0", segmenter=served["url"], segmenter_kwargs={"token": TOKEN}, image_size=56)
    sample_id = local_env.dataset.sample_ids[7]
    for reply in _replies(local_env, sample_id):
        env.reset(options={"sample_id": sample_id})
        _, reward, _, _, info = env.step(reply)
        assert (reward, info["reward_terms"], info["iou"]) == _expected(local_env, sample_id, reply)


def test_sigterm_stops_the_command_and_everything_it_started(served):
    # Runs last in this module: it stops the service the others used.
    proc = served["proc"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=90) == 0, "".join(served["lines"])[-3000:]
    _, alive = psutil.wait_procs(served["descendants"], timeout=60)
    assert not alive, f"left behind by segzero serve: {[(p.pid, p.name()) for p in alive]}"


def test_serve_openenv_command_resets_steps_and_stops_on_sigterm(local_env):
    pytest.importorskip("openenv.core")
    from segzero_env.service.openenv_env import ReasonSegAction, ReasonSegEnvClient

    port = free_port()
    cmd = [
        sys.executable, "-m", "segzero_env.cli", "serve-openenv",
        "--env-kwargs", "segmenter=box", "image_size=56", "--host", "127.0.0.1", "--port", str(port),
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()[-3000:]
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "segzero serve-openenv did not listen within 90 s"
                time.sleep(0.5)
        _, info = local_env.reset(seed=11)
        reply = format_reply(box=info["gt_box"], points=info["gt_points"])
        reward, terms, iou = _expected(local_env, info["sample_id"], reply)
        with ReasonSegEnvClient(base_url=url).sync() as client:
            result = client.reset(sample_id=info["sample_id"])
            assert result.observation.sample_id == info["sample_id"]
            result = client.step(ReasonSegAction(reply=reply))
            assert result.done and result.reward == reward and result.observation.iou == iou
            assert result.observation.reward_terms == terms
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)  # the process this test started, by its id
    # uvicorn shuts down gracefully, then re-raises the signal: the usual status of a process ended by SIGTERM
    assert proc.wait(timeout=60) in (0, -signal.SIGTERM), proc.stdout.read()[-3000:]
