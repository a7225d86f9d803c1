import base64
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from segzero_env.answers import format_reply
from segzero_env.parsing import parse_reply
from segzero_env.policies import make_policy
from segzero_env.policies.openai_policy import ServerUnreachableError, image_data_url

S = 56
REPLY = format_reply(box=(10, 12, 40, 44), points=[(20, 20), (30, 35)], think="the square")


class ChatServer:
    """A tiny OpenAI-compatible server: canned replies, records request bodies, fails on demand."""

    def __init__(self, fail_first=0, fail_status=503, reply_for=None):
        self.bodies = []
        self.headers = []
        self.failures_left = fail_first
        self.fail_status = fail_status
        self.reply_for = reply_for or (lambda body: REPLY)
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    fail = server.failures_left > 0
                    server.failures_left -= fail
                    if not fail:
                        server.bodies.append(body)
                        server.headers.append(dict(self.headers))
                if self.path != "/v1/chat/completions":
                    self.send_response(404)
                    self.end_headers()
                    return
                if fail:
                    self.send_response(server.fail_status)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": "overloaded"}')
                    return
                payload = {
                    "id": "x",
                    "object": "chat.completion",
                    "choices": [{"index": 0, "message": {"role": "assistant", "content": server.reply_for(body)}}],
                    "usage": {"prompt_tokens": 10, "completion_tokens": 7},
                }
                data = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def batch(n=3):
    rng = np.random.default_rng(0)
    observations = [{"image": rng.integers(0, 255, (S, S, 3), dtype=np.uint8), "query": f"q{i}"} for i in range(n)]
    infos = [{"sample_id": f"s{i}", "image_size": S, "prompt": f"Please find 'shape {i}'."} for i in range(n)]
    return observations, infos


def decode_image(url):
    header, data = url.split(",", 1)
    assert header == "data:image/png;base64"
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(data))))


def test_requests_carry_image_prompt_and_settings_and_retry_a_503():
    observations, infos = batch(3)
    with ChatServer(fail_first=1) as server:
        policy = make_policy(
            "openai",
            model="seg-zero-7b",
            base_url=server.url,
            api_key="k",
            max_tokens=64,
            backoff=0.01,
            concurrency=3,
            extra_body={"seed": 1},
        )
        replies = policy.act(observations, infos)
        policy.close()
    assert replies == [REPLY] * 3
    assert policy.stats()["retries"] == 1 and policy.stats()["completion_tokens"] == 21
    assert len(server.bodies) == 3
    for body in server.bodies:
        assert body["model"] == "seg-zero-7b" and body["max_tokens"] == 64 and body["temperature"] == 0.0
        assert body["seed"] == 1
        system, user = body["messages"]
        assert system == {"role": "system", "content": "You are a helpful assistant."}
        image_part, text_part = user["content"]
        assert image_part["type"] == "image_url" and text_part["type"] == "text"
        i = int(text_part["text"].split("shape ")[1][0])
        assert text_part["text"] == infos[i]["prompt"]
        np.testing.assert_array_equal(decode_image(image_part["image_url"]["url"]), observations[i]["image"])
    assert all(h["Authorization"] == "Bearer k" for h in server.headers)


def test_replies_come_back_in_order_under_concurrency():
    observations, infos = batch(8)

    def echo(body):
        text = body["messages"][-1]["content"][1]["text"]
        return text

    with ChatServer(reply_for=echo) as server:
        policy = make_policy("openai", model="m", base_url=server.url, concurrency=4)
        replies = policy.act(observations, infos)
        policy.close()
    assert replies == [info["prompt"] for info in infos]


def test_relative_frame_is_rescaled():
    observations, infos = batch(1)
    relative = format_reply(box=(0, 0, 500, 1000), points=[(250, 500), (100, 100)], think="t")
    with ChatServer(reply_for=lambda body: relative) as server:
        policy = make_policy("openai", model="m", base_url=server.url, coordinate_frame="relative-1000")
        (reply,) = policy.act(observations, infos)
        policy.close()
    (obj,) = parse_reply(reply).objects
    assert obj.box == (0.0, 0.0, S / 2, float(S))
    assert obj.points[0] == (S / 4, S / 2)


def test_client_error_is_raised_at_once():
    observations, infos = batch(1)
    with ChatServer(fail_first=5, fail_status=400) as server:
        policy = make_policy("openai", model="m", base_url=server.url, backoff=0.01)
        with pytest.raises(RuntimeError, match="HTTP 400"):
            policy.act(observations, infos)
        policy.close()
    assert server.failures_left == 4  # no retry on a 4xx other than 408/409/429


def test_persistent_5xx_gives_up_after_retries():
    observations, infos = batch(1)
    with ChatServer(fail_first=10, fail_status=500) as server:
        policy = make_policy("openai", model="m", base_url=server.url, backoff=0.001, max_retries=2)
        with pytest.raises(ServerUnreachableError, match="after 3 attempts"):
            policy.act(observations, infos)
        policy.close()
    assert server.failures_left == 7


def test_unreachable_server_error_names_the_url():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens on this port now
    url = f"http://127.0.0.1:{port}/v1"
    observations, infos = batch(1)
    policy = make_policy("openai", model="m", base_url=url, backoff=0.001, max_retries=1, timeout=2)
    with pytest.raises(ServerUnreachableError, match=f"127.0.0.1:{port}/v1/chat/completions"):
        policy.act(observations, infos)
    policy.close()


def test_bad_settings_and_jpeg():
    with pytest.raises(ValueError, match="coordinate_frame"):
        make_policy("openai", model="m", coordinate_frame="pixels")
    with pytest.raises(ValueError, match="concurrency"):
        make_policy("openai", model="m", concurrency=0)
    assert image_data_url(np.zeros((4, 4, 3), np.uint8), "jpeg").startswith("data:image/jpeg;base64,")
    with pytest.raises(ValueError, match="image_format"):
        image_data_url(np.zeros((4, 4, 3), np.uint8), "gif")


def test_eval_runs_the_openai_policy_end_to_end(tmp_path):
    from segzero_env.cli import main as segzero_main

    with ChatServer(fail_first=1) as server:
        status = segzero_main(
            [
                "eval",
                "--env",
                "ReasonSegShapes-v0",
                "--env-kwargs",
                "segmenter=box",
                "split=val",
                "image_size=56",
                'dataset_kwargs={"size": 4}',
                "--policy",
                "openai",
                "--policy-kwargs",
                "model=m",
                f"base_url={server.url}",
                "backoff=0.01",
                "--batch-size",
                "4",
                "--out",
                str(tmp_path),
                "--no-progress",
            ]
        )
    assert status == 0
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["n"] == 4 and metrics["unusable_reply_rate"] == 0.0
    assert metrics["policy_stats"]["retries"] == 1 and len(server.bodies) == 4
    assert 0.0 <= metrics["giou"] <= 1.0 and metrics["reward_terms_mean"]["think_format"] == 1.0


class EchoHeadersHandler(BaseHTTPRequestHandler):
    """Answers 401 with the request's Authorization header in the body, as some proxies do."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        data = f'{{"error": "bad credentials: {self.headers.get("Authorization")}"}}'.encode()
        self.send_response(401)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_api_key_comes_from_the_named_env_var_and_is_redacted_in_errors(monkeypatch):
    observations, infos = batch(1)
    monkeypatch.setenv("SEGZERO_TEST_KEY", "sk-from-env-123")
    with ChatServer() as server:
        policy = make_policy("openai", model="m", base_url=server.url, api_key_env="SEGZERO_TEST_KEY")
        policy.act(observations, infos)
        policy.close()
    assert server.headers[0]["Authorization"] == "Bearer sk-from-env-123"
    assert "sk-from-env" not in repr(policy)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), EchoHeadersHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
        policy = make_policy("openai", model="m", base_url=url, api_key="sk-secret-456")
        with pytest.raises(RuntimeError, match="HTTP 401") as caught:
            policy.act(observations, infos)
        policy.close()
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)
    assert "sk-secret-456" not in str(caught.value) and "Bearer <redacted>" in str(caught.value)


def test_eval_never_writes_the_key_and_resumes_with_a_rotated_one(tmp_path):
    from segzero_env.evaluation import evaluate

    env_kwargs = {"segmenter": "box", "split": "val", "image_size": 56, "dataset_kwargs": {"size": 4}}
    with ChatServer() as server:
        kwargs = {"model": "m", "base_url": server.url}
        evaluate(
            "ReasonSegShapes-v0",
            env_kwargs,
            "openai",
            tmp_path,
            limit=2,
            progress=False,
            policy_kwargs={**kwargs, "api_key": "sk-old-key-1"},
        )
        metrics = evaluate(
            "ReasonSegShapes-v0",
            env_kwargs,
            "openai",
            tmp_path,
            limit=4,
            resume=True,
            progress=False,
            policy_kwargs={**kwargs, "api_key": "sk-new-key-2"},
        )
    assert metrics["n"] == 4
    assert [h["Authorization"] for h in server.headers] == ["Bearer sk-old-key-1"] * 2 + ["Bearer sk-new-key-2"] * 2
    run = json.loads((tmp_path / "run.json").read_text())
    assert run["policy_kwargs"]["api_key"] == "<redacted>"
    for path in tmp_path.rglob("*"):
        if path.is_file():
            text = path.read_bytes()
            assert b"sk-old-key" not in text and b"sk-new-key" not in text, path


class RawServer:
    """Answers every POST with the bytes ``respond(server)`` returns, one byte every ``pace`` seconds.

    ``pace=0`` sends them at once. Counts the bytes the client took before it hung up.
    """

    def __init__(self, respond, pace=0.0):
        self.sent = 0
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                server.requests += 1
                data = respond(server)
                try:
                    if not pace:
                        self.wfile.write(data)
                        server.sent += len(data)
                        return
                    for i in range(len(data)):  # bounded: the whole answer, one byte at a time
                        self.wfile.write(data[i : i + 1])
                        server.sent += 1
                        time.sleep(pace)
                except OSError:
                    pass  # the client hung up
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def raw_answer(body, status="200 OK", content_type="application/json"):
    head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    return head.encode() + body


CHAT_JSON = json.dumps({"choices": [{"message": {"role": "assistant", "content": REPLY}}]}).encode()


def test_a_server_that_trickles_its_answer_hits_the_request_deadline():
    observations, infos = batch(1)
    answer = raw_answer(CHAT_JSON)  # status line and headers trickle too
    with RawServer(lambda server: answer, pace=0.02) as server:
        # every single read is quick, so only the total deadline can end the request
        policy = make_policy(
            "openai", model="m", base_url=server.url, timeout=5, request_timeout=0.3, max_retries=1, backoff=0.01
        )
        with pytest.raises(ServerUnreachableError, match=r"after 2 attempts \(last error: no complete answer within"):
            policy.act(observations, infos)
        policy.close()
    assert server.requests == 2 and server.sent < 2 * len(answer)


def test_an_html_page_with_status_200_is_named_and_retried():
    observations, infos = batch(1)
    page = b"<html><body><h1>502 Bad Gateway</h1></body></html>"

    def html_then_json(server):
        return raw_answer(page, content_type="text/html") if server.requests == 1 else raw_answer(CHAT_JSON)

    with RawServer(html_then_json) as server:
        policy = make_policy("openai", model="m", base_url=server.url, backoff=0.01)
        assert policy.act(observations, infos) == [REPLY]
        assert policy.stats()["retries"] == 1
        policy.close()
    with RawServer(lambda server: raw_answer(page, content_type="text/html")) as server:
        policy = make_policy("openai", model="m", base_url=server.url, backoff=0.01, max_retries=1)
        with pytest.raises(ServerUnreachableError) as caught:
            policy.act(observations, infos)
        policy.close()
    message = str(caught.value)
    assert f"{server.url}/chat/completions answered HTTP 200 with text/html, not JSON" in message
    assert "<html><body>" in message and server.requests == 2
