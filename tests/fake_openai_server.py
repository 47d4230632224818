"""A tiny OpenAI-compatible server in a thread, for tests that need real HTTP engines
without vLLM (a helper of the tests, not a test module).

It streams chat answers word by word as server-sent events, lists one model, and has no
`/health` (as a server that is not vLLM would not). `dies_after=N`: after N answers it is
dead: every later request gets its connection dropped, and every probe a 503.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

MODEL = "fake-model"


def echo_answer(prompt: str) -> str:
    return f"you said {len(prompt.split())} words"


class FakeOpenAIServer:
    def __init__(
        self,
        answer: Callable[[str], str] = echo_answer,
        *,
        dies_after: int | None = None,
        word_delay_s: float = 0.01,
    ) -> None:
        self.answer = answer
        self.dies_after = dies_after
        self.word_delay_s = word_delay_s
        self.answered = 0
        self.prompts: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def dead(self) -> bool:
        return self.dies_after is not None and self.answered >= self.dies_after

    def start_answer(self, prompt: str) -> bool:
        """Count an answer about to be given; False if the server is dead."""
        with self._lock:
            if self.dead:
                return False
            self.answered += 1
            self.prompts.append(prompt)
            return True

    def __enter__(self) -> FakeOpenAIServer:
        self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()


def _handler_for(fake: FakeOpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def do_GET(self) -> None:
            if fake.dead:
                self._json(503, {"error": {"message": "engine is dead"}})
            elif self.path == "/v1/models":
                self._json(200, {"object": "list", "data": [{"id": MODEL}]})
            else:
                self._json(404, {"error": {"message": f"no {self.path}"}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            messages = body.get("messages") or [{"role": "user", "content": body.get("prompt")}]
            resume = ""
            if body.get("continue_final_message"):
                resume = messages.pop()["content"]
            prompt = " ".join(str(m["content"]) for m in messages)
            if not fake.start_answer(prompt):
                self.close_connection = True  # dropped without a response, as a crash does
                return
            text = fake.answer(prompt)
            text = text[len(resume):] if resume and text.startswith(resume) else text
            self._stream(text.split(" ") if text else [], prompt)

        def _stream(self, words: list[str], prompt: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for i, word in enumerate(words):
                piece = word if i == len(words) - 1 else word + " "
                self._event({"choices": [{"index": 0, "delta": {"content": piece},
                                          "finish_reason": None}]})
                time.sleep(fake.word_delay_s)
            self._event({"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
            self._event({"choices": [], "usage": {
                "prompt_tokens": len(prompt.split()), "completion_tokens": len(words)}})
            self.wfile.write(b"data: [DONE]\n\n")
            self.close_connection = True

        def _event(self, payload: dict[str, Any]) -> None:
            self.wfile.write(f"data: {json.dumps(payload)}\n\n".encode())
            self.wfile.flush()

        def _json(self, status: int, payload: dict[str, Any]) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler
