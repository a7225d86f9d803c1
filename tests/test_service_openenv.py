"""ReasonSeg served as an OpenEnv environment (openenv-core's server and client), on the CPU."""

import json
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import gymnasium as gym
import pytest


def test_the_service_clients_and_the_cli_import_no_ray_torch_or_web_framework():
    code = (
        "import sys, segzero_env, segzero_env.service, segzero_env.cli, segzero_env.integrations.trl_service, "
        "segzero_env.integrations.verl_service, segzero_env.service.remote_segmenter\n"
        "segzero_env.cli.build_parser()\n"
        "print([m for m in ('ray', 'torch', 'fastapi', 'openenv') if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


pytest.importorskip("openenv.core")
uvicorn = pytest.importorskip("uvicorn")

import segzero_env  # noqa: E402, F401
from segzero_env.answers import format_reply  # noqa: E402
from segzero_env.service.openenv_env import (  # noqa: E402
    ReasonSegAction,
    ReasonSegEnvClient,
    create_openenv_app,
    decode_image,
)

ENV = {"segmenter": "grabcut", "image_size": 112}


@pytest.fixture(scope="module")
def server():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_openenv_app("ReasonSegShapes-v0", ENV, max_sessions=4)
    instance = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not instance.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert instance.started, "the OpenEnv server did not start"
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    thread.join(timeout=30)
    assert not thread.is_alive()


@pytest.fixture(scope="module")
def local_env():
    return gym.make("ReasonSegShapes-v0", **ENV).unwrapped


def test_client_session_reset_step_state_match_the_env(server, local_env):
    _, info = local_env.reset(seed=3)
    reply = format_reply(box=info["gt_box"], points=info["gt_points"])
    _, reward, _, _, step_info = local_env.step(reply)
    with ReasonSegEnvClient(base_url=server).sync() as client:
        result = client.reset(sample_id=info["sample_id"])
        observation = result.observation
        assert observation.sample_id == info["sample_id"] and observation.prompt == info["prompt"]
        assert observation.image_size == 112 and decode_image(observation).shape == (112, 112, 3)
        assert result.done is False and observation.iou is None
        result = client.step(ReasonSegAction(reply=reply))
        assert result.done is True and result.reward == reward
        assert result.observation.iou == step_info["iou"]
        assert result.observation.reward_terms == step_info["reward_terms"]
        state = client.state()
        assert state.sample_id == info["sample_id"] and state.step_count == 1 and state.done
        bad = client.step(ReasonSegAction(reply="no tags", sample_id=info["sample_id"]))  # starts a new episode
        assert bad.reward == 0.0 and bad.observation.parse_failure == "no_answer_tag"


def test_stateless_http_step_with_a_sample_id(server, local_env):
    _, info = local_env.reset(seed=5)
    reply = format_reply(box=info["gt_box"], points=info["gt_points"])
    _, reward, _, _, _ = local_env.step(reply)
    body = json.dumps({"action": {"reply": reply, "sample_id": info["sample_id"]}}).encode()
    request = urllib.request.Request(server + "/step", data=body, headers={"Content-Type": "application/json"})
    answer = json.loads(urllib.request.urlopen(request, timeout=60).read())
    assert answer["reward"] == reward and answer["done"] is True
    schema = json.loads(urllib.request.urlopen(server + "/schema", timeout=60).read())
    assert "reply" in json.dumps(schema["action"])
