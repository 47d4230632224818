"""`taskloom serve`: one durable, multi-tenant runtime behind an HTTP API. Every run of
every client shares one engine and one scheduler per policy; the run store keeps each
finished node, so a restarted server resumes what was running."""

from taskloom.serve.config import ServeConfig, ServeConfigError

__all__ = ["ServeConfig", "ServeConfigError"]
