"""Run the server under uvicorn until it is stopped (Ctrl-C or SIGTERM: the runs in
flight stay `running` in the store, and the next start resumes them)."""

from __future__ import annotations

import uvicorn

from taskloom.serve.app import create_app
from taskloom.serve.config import ServeConfig


def serve_forever(config: ServeConfig) -> None:
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), host=config.host, port=config.port, log_level="warning",
        timeout_graceful_shutdown=5, lifespan="on",
    ))
    server.run()
