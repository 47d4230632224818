"""Error types a user can act on. Every error says where and what to do next."""

from __future__ import annotations

from dataclasses import dataclass


class TaskloomError(Exception):
    """Base class of every error taskloom raises on purpose."""


@dataclass(frozen=True)
class SourceLocation:
    """A place in a spec file. Lines and columns are 1-based, as editors show them."""

    file: str
    line: int
    column: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class SpecError(TaskloomError):
    """A spec that cannot run. Carries file, line, column, node and a hint."""

    def __init__(
        self,
        message: str,
        *,
        location: SourceLocation | None = None,
        node: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.location = location
        self.node = node
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        where = f"{self.location}: " if self.location else ""
        node = f"node '{self.node}': " if self.node else ""
        hint = f"\n  hint: {self.hint}" if self.hint else ""
        return f"{where}{node}{self.message}{hint}"


class SpecErrors(TaskloomError):
    """Several spec errors found in one check, reported together."""

    def __init__(self, errors: list[SpecError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.render() for e in errors))


class ToolError(TaskloomError):
    """A tool refused its arguments or failed while running."""


class BackendError(TaskloomError):
    """The engine is unreachable, died, or rejected a request."""


class NodeTimeout(TaskloomError):
    """A node ran past its `timeout`."""


def root_cause(exc: Exception) -> Exception:
    """The first real error inside task-group wrappers: anyio task groups wrap what
    their tasks raise in exception groups, which says nothing useful to a user."""
    while isinstance(exc, ExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    return exc


class BudgetExceeded(TaskloomError):
    """A call was refused because its run has crossed a limit of its budget. The run
    itself is being stopped: it ends `budget_exceeded`, not with this as a node error."""
