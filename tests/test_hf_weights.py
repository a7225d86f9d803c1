"""Model resolution (local folder, hub cache, hub) and the hub probe, with the hub unreachable.

The hub endpoint is pointed at a closed port on 127.0.0.1 and the hub cache at an empty folder, so
each test sees what a user without network sees. Times to the error are printed (``-s``) and guarded
only against minute-long retries.
"""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

hub_constants = pytest.importorskip("huggingface_hub.constants")

from segzero_env import hub  # noqa: E402
from segzero_env.hf.weights import ModelNotFoundError, missing_files, resolve_model  # noqa: E402

GUARD_S = 20.0
"""Far above the few seconds expected; only catches a return of the hub client's minute-long retries."""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def offline_world(tmp_path, monkeypatch):
    """Hub at a closed local port, empty hub cache, no offline setting; all restored afterwards."""
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed_port()}")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(name, "0")  # recorded, so the value the probe writes is undone too
        monkeypatch.delenv(name)
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    if "datasets.config" in sys.modules:
        monkeypatch.setattr(sys.modules["datasets.config"], "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub, "_probed", {})
    monkeypatch.setattr(hub, "_offline_reason", None)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_cached_snapshot(cache: Path, repo_id: str, files: dict[str, str]) -> Path:
    """Lay out ``repo_id`` in the hub cache format: refs/main names a snapshot folder holding ``files``."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, text in files.items():
        (snapshot / name).write_text(text)
    return snapshot


def test_probe_of_a_closed_port_switches_the_process_offline(offline_world):
    start = time.perf_counter()
    reason = hub.hub_unavailable_reason()
    seconds = time.perf_counter() - start
    print(f"probe of a closed port: {seconds:.2f} s")
    assert reason is not None and "ConnectionRefusedError" in reason
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert hub_constants.HF_HUB_OFFLINE is True
    assert hub.hub_available() is False  # remembered: no second probe
    assert seconds < GUARD_S


def test_probe_gives_up_on_a_silent_server_after_its_timeout(offline_world, monkeypatch):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)  # the kernel completes the handshake; nobody ever answers the request
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.getsockname()[1]}")
    try:
        start = time.perf_counter()
        reason = hub.probe_hub(hub.hub_endpoint(), timeout=0.5)
        seconds = time.perf_counter() - start
    finally:
        server.close()
    print(f"probe of a silent server (timeout 0.5 s): {seconds:.2f} s")
    assert reason is not None and "timed out" in reason.lower()
    assert seconds < GUARD_S


def test_probe_counts_any_http_answer_as_reachable(offline_world, monkeypatch):
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NotFound(BaseHTTPRequestHandler):
        def do_HEAD(self):  # noqa: N802 - the handler API's name
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{server.server_address[1]}/")
    try:
        assert hub.hub_unavailable_reason() is None
    finally:
        server.shutdown()
        server.server_close()
    assert "HF_HUB_OFFLINE" not in os.environ


def test_offline_setting_is_honoured_without_probing(offline_world, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert hub.hub_unavailable_reason() == "HF_HUB_OFFLINE is set"
    assert hub._probed == {}


def test_missing_hub_model_fails_fast_listing_places_and_fixes(offline_world):
    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("Qwen/Qwen2.5-VL-3B-Instruct", what="policy model")
    seconds = time.perf_counter() - start
    print(f"missing hub model, hub unreachable: {seconds:.2f} s")
    err = info.value
    assert isinstance(err, FileNotFoundError)
    assert err.name_or_path == "Qwen/Qwen2.5-VL-3B-Instruct"
    assert [line.split(" ")[0] for line in err.tried] == ["local", "hub", "hub"]
    message = str(err)
    for needle in (
        "policy model 'Qwen/Qwen2.5-VL-3B-Instruct' not found",
        str(offline_world / "hub-cache"),
        "ConnectionRefusedError",
        "hf download Qwen/Qwen2.5-VL-3B-Instruct --local-dir",
        "--model-name-or-path",
        "--policy-kwargs model=",
        "'tiny'",
    ):
        assert needle in message, needle
    assert seconds < GUARD_S


def test_missing_local_path_fails_without_the_hub(offline_world):
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model(str(offline_world / "models" / "Qwen2.5-VL-3B-Instruct"))
    assert info.value.tried == [f"local folder {offline_world / 'models' / 'Qwen2.5-VL-3B-Instruct'}: no such folder"]
    assert f"--local-dir {offline_world / 'models' / 'Qwen2.5-VL-3B-Instruct'}" in str(info.value)
    assert hub._probed == {}  # a path is never looked up on the hub


def test_incomplete_folders_are_named_with_what_is_missing(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    assert missing_files(folder) == "no config.json"
    (folder / "config.json").write_text("{}")
    assert "but no weights" in missing_files(folder)
    index = {"weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    (folder / "model-00001-of-00002.safetensors").write_text("")
    assert missing_files(folder) == "missing 1 of 2 weight shards (e.g. model-00002-of-00002.safetensors)"
    with pytest.raises(ModelNotFoundError, match="missing 1 of 2 weight shards"):
        resolve_model(folder)
    (folder / "model-00002-of-00002.safetensors").write_text("")
    assert resolve_model(folder).source == "local"
    assert missing_files(tmp_path, weights=False).startswith("none of config.json")


def test_complete_cache_snapshot_is_used_and_an_incomplete_one_reported(offline_world):
    cache = offline_world / "hub-cache"
    snapshot = write_cached_snapshot(cache, "Org/complete", {"config.json": "{}", "model.safetensors": ""})
    resolved = resolve_model("Org/complete")
    assert (resolved.source, Path(resolved.name_or_path)) == ("hub-cache", snapshot)
    write_cached_snapshot(cache, "Org/partial", {"config.json": "{}"})
    with pytest.raises(ModelNotFoundError) as info:
        resolve_model("Org/partial")
    assert "incomplete download (config.json but no weights" in info.value.tried[1]


def test_adapter_folder_resolves_its_base_model(offline_world):
    adapter = offline_world / "lora"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "Org/absent-base"}))
    with pytest.raises(ModelNotFoundError, match="base model of the adapter"):
        resolve_model(adapter)


def test_hf_policy_error_in_a_fresh_process_comes_in_seconds(offline_world):
    """What a user sees: a new process, no network, a hub id that is not downloaded."""
    code = (
        "import time; t = time.perf_counter()\n"
        "from segzero_env.policies import make_policy\n"
        "try:\n"
        "    make_policy('hf', model='Qwen/Qwen2.5-VL-3B-Instruct')\n"
        "except FileNotFoundError as err:\n"
        "    print(type(err).__name__, f'{time.perf_counter() - t:.2f}'); print(err)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_HUB_CACHE"] = str(offline_world / "hub-cache")
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    seconds = time.perf_counter() - start
    print(f"fresh process to the hf policy's error: {seconds:.2f} s")
    first, _, message = done.stdout.partition("\n")
    assert first.startswith("ModelNotFoundError"), done.stdout + done.stderr
    assert "hf policy model 'Qwen/Qwen2.5-VL-3B-Instruct' not found" in message
    assert "unreachable (ConnectionRefusedError" in message
    assert seconds < GUARD_S


def test_hf_policy_builds_tiny_and_loads_a_cached_snapshot_offline(offline_world):
    import numpy as np

    from segzero_env.hf.tiny import build_tiny_qwen25vl
    from segzero_env.policies import make_policy

    tiny = make_policy("hf", model="tiny", max_new_tokens=4)
    assert tiny.model_type == "qwen2_5_vl"
    model, processor = build_tiny_qwen25vl(seed=0)
    snapshot = write_cached_snapshot(offline_world / "hub-cache", "Org/tiny-vl", {})
    model.save_pretrained(snapshot)
    processor.save_pretrained(snapshot)
    cached = make_policy("hf", model="Org/tiny-vl", max_new_tokens=4)  # hub unreachable: the cache serves it
    image = np.zeros((56, 56, 3), np.uint8)
    replies = cached.act([{"image": image, "query": "q"}], [{"image_size": 56, "prompt": "Find it."}])
    assert len(replies) == 1 and isinstance(replies[0], str)


def test_agent_loader_raises_the_same_error(offline_world):
    torch = pytest.importorskip("torch")
    from segzero_agents.policy_model import load_policy

    start = time.perf_counter()
    with pytest.raises(ModelNotFoundError, match=r"policy model \(--model-name-or-path\) 'Org/absent' not found"):
        load_policy("Org/absent", device=torch.device("cpu"))
    print(f"agent loader, hub unreachable: {time.perf_counter() - start:.2f} s")


def test_sam2_resolver_shares_the_probe_and_fails_fast(offline_world, monkeypatch):
    from segzero_env.segmenters.weights import WeightsNotFoundError, model_spec, resolve_checkpoint

    monkeypatch.setenv("XDG_CACHE_HOME", str(offline_world / "xdg"))
    monkeypatch.delenv("SEGZERO_SAM2_CHECKPOINT", raising=False)
    monkeypatch.delenv("SEGZERO_SAM2_DIR", raising=False)
    start = time.perf_counter()
    with pytest.raises(WeightsNotFoundError) as info:
        resolve_checkpoint(model_spec("tiny"))
    seconds = time.perf_counter() - start
    print(f"SAM2 checkpoint, hub unreachable: {seconds:.2f} s")
    assert "download not tried (unreachable (ConnectionRefusedError" in info.value.tried[-1]
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    assert seconds < GUARD_S


def test_reachable_hub_is_asked_and_its_answer_reported(offline_world, monkeypatch):
    """A hub that answers (here a local server that knows no repository): the download is tried, not skipped."""
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class NoRepos(BaseHTTPRequestHandler):
        def _not_found(self):
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_HEAD = do_GET = _not_found  # noqa: N815 - the handler API's names

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), NoRepos)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    try:
        with pytest.raises(ModelNotFoundError) as info:
            resolve_model("Org/absent")
    finally:
        server.shutdown()
        server.server_close()
    assert info.value.tried[-1].startswith(f"hub {endpoint}/Org/absent: RepositoryNotFoundError")
    assert "HF_HUB_OFFLINE" not in os.environ
