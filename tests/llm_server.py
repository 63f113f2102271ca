"""A local OpenAI-compatible server for tests, so the real `openai` SDK is exercised end to end.

Implements POST /v1/chat/completions (valid JSON content built from the requested json_schema, plus
usage) and POST /v1/images/generations. Faults are scripted per request: latency, 429 with Retry-After,
429 insufficient_quota, 500, a hang past the client timeout, invalid JSON content. Every request body is
recorded with its arrival time so tests can check what left the process and how retries were spaced.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from portal.settings import Settings

DEFAULT_FIELDS: dict[str, Any] = {
    "angle": "benefit-led",
    "headline": "Fresh picks for members this week",
    "body": "Fresh picks just landed for our members. Enjoy easy weekday treats close to home. Shop now.",
    "cta": "Shop now",
    "hashtags": ["#ShopLocal", "#MembersOnly"],
    "image_prompt": "Bright flat-lay of fresh produce on a wooden table, soft morning light, no text",
}


@dataclass
class Reply:
    """How the server answers one request; the defaults are a prompt, valid answer."""

    status: int = 200
    retry_after: str | None = None
    error_code: str | None = None
    hang_s: float = 0.0
    content: str | None = None
    fields: dict[str, Any] | None = None
    finish_reason: str = "stop"


@dataclass
class Recorded:
    """One request as the server saw it."""

    path: str
    body: dict[str, Any]
    raw: str
    at: float
    headers: dict[str, str] = field(default_factory=dict)


def instance_from_schema(schema: dict[str, Any], defs: dict[str, Any], name: str = "") -> Any:
    """A valid value for a JSON schema, with plausible marketing copy for the fields we know."""
    if "$ref" in schema:
        return instance_from_schema(defs[schema["$ref"].split("/")[-1]], defs, name)
    if "anyOf" in schema:
        options = [s for s in schema["anyOf"] if s.get("type") != "null"] or schema["anyOf"]
        return instance_from_schema(options[0], defs, name)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {key: instance_from_schema(sub, defs, key) for key, sub in schema.get("properties", {}).items()}
    if name in DEFAULT_FIELDS:
        return DEFAULT_FIELDS[name]
    if kind == "array":
        return [instance_from_schema(schema.get("items", {}), defs, name)]
    if "enum" in schema:
        return schema["enum"][0]
    return {"string": f"sample {name}", "integer": 1, "number": 1.0, "boolean": True}.get(kind)


class FakeLLMServer:
    """The server, its scripted replies and its request log; thread-safe."""

    def __init__(self) -> None:
        self.latency_s = 0.0
        self.default = Reply()
        self.requests: list[Recorded] = []
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-llm", daemon=True)
        self._thread.start()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    @property
    def base_url(self) -> str:
        return f"{self.origin}/v1"

    def queue(self, *replies: Reply) -> None:
        """Answer the next requests with these replies, in order; then fall back to `default`."""
        with self._lock:
            self._queue.extend(replies)

    def reset(self) -> None:
        with self._lock:
            self.latency_s, self.default = 0.0, Reply()
            self._queue.clear()
            self.requests.clear()

    def calls(self, path: str = "/v1/chat/completions") -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def close(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()

    # -- request handling --------------------------------------------------------------------

    def _next(self, raw: str, path: str, headers: dict[str, str]) -> tuple[Reply, dict[str, Any], float]:
        try:
            body = json.loads(raw or "{}")
        except ValueError:
            body = {}
        with self._lock:
            self.requests.append(Recorded(path, body, raw, time.monotonic(), headers))
            reply = self._queue.popleft() if self._queue else self.default
            return reply, body, self.latency_s

    def _answer(self, path: str, body: dict[str, Any], reply: Reply) -> tuple[int, dict[str, str], dict]:
        headers = {"Retry-After": reply.retry_after} if reply.retry_after else {}
        if reply.status != 200:
            code = reply.error_code or ("rate_limit_exceeded" if reply.status == 429 else "server_error")
            error = {"message": f"fake {reply.status}", "type": code if code == "insufficient_quota" else
                     "requests", "param": None, "code": code}
            return reply.status, headers, {"error": error}
        if path.endswith("/images/generations"):
            n = len(self.calls("/v1/images/generations"))
            return 200, headers, {"created": int(time.time()), "data": [
                {"url": f"{self.origin}/images/{n}.png", "revised_prompt": body.get("prompt")}]}
        if not body.get("model") or not body.get("messages"):
            return 400, headers, {"error": {"message": "model and messages are required", "type": "invalid_request",
                                            "param": None, "code": None}}
        content = reply.content
        if content is None:
            fmt = (body.get("response_format") or {}).get("json_schema") or {}
            schema = fmt.get("schema") or {"type": "object", "properties": {k: {} for k in DEFAULT_FIELDS}}
            value = instance_from_schema(schema, schema.get("$defs", {}))
            if isinstance(value, dict):
                value.update(reply.fields or {})
            content = json.dumps(value)
        prompt_tokens = max(1, len(json.dumps(body.get("messages"))) // 4)
        completion_tokens = max(1, len(content) // 4)
        return 200, headers, {
            "id": f"chatcmpl-{len(self.requests)}", "object": "chat.completion", "created": int(time.time()),
            "model": body["model"],
            "choices": [{"index": 0, "finish_reason": reply.finish_reason, "logprobs": None,
                         "message": {"role": "assistant", "content": content, "refusal": None}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode("utf-8", "replace")
                reply, body, latency = server._next(raw, self.path, dict(self.headers))
                if latency:
                    server._stop.wait(latency)
                if reply.hang_s:
                    server._stop.wait(reply.hang_s)
                status, headers, payload = server._answer(self.path, body, reply)
                data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for name, value in headers.items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass

        return Handler


@pytest.fixture(scope="session")
def llm_server_session() -> Iterator[FakeLLMServer]:
    server = FakeLLMServer()
    yield server
    server.close()


@pytest.fixture
def llm_server(llm_server_session: FakeLLMServer) -> Iterator[FakeLLMServer]:
    """The shared fake server, with no scripted faults and an empty request log."""
    llm_server_session.reset()
    yield llm_server_session
    llm_server_session.reset()


@pytest.fixture
def llm_settings(llm_server: FakeLLMServer) -> Callable[..., Settings]:
    """Settings pointed at the fake server, with short timeouts; keyword overrides win."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "openai_api_key": "sk-test", "openai_base_url": llm_server.base_url, "openai_model": "gpt-test",
            "openai_timeout_s": 2.0, "openai_max_retries": 2, "gunicorn_timeout_s": 30,
            "generation_concurrency": 8, "cache_ttl_s": 3600, "redis_url": None, "brand_profile_path": None,
            "generate_images": False, "openai_image_model": "dall-e-3"}
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return make
