"""Run the server under uvicorn until it is stopped (Ctrl-C or SIGTERM: the runs in
flight stay `running` in the store, and the next start resumes them)."""

from __future__ import annotations

import sys

import uvicorn

from taskloom.serve.app import create_app
from taskloom.serve.config import ServeConfig

# How long a thread may hold the GIL while another waits for it (Python's default is 5
# ms). The event loop shares the GIL with the worker threads that render slow templates,
# check specs and run sync tools; each time it wakes (every request, every token) it may
# wait this long, so a tenant keeping those threads busy would slow everyone's runs.
SWITCH_INTERVAL_S = 0.0005


def serve_forever(config: ServeConfig) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    server = uvicorn.Server(uvicorn.Config(
        create_app(config), host=config.host, port=config.port, log_level="warning",
        timeout_graceful_shutdown=5, lifespan="on",
    ))
    server.run()
