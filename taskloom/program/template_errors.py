"""What a template that cannot be parsed, compiled or rendered fails with: one
`TemplateError`, whatever Jinja, the sandbox or Python raised underneath."""

from __future__ import annotations

import jinja2

from taskloom.errors import TaskloomError
from taskloom.program.template_limits import TemplateLimitError, template_limits


class TemplateError(TaskloomError):
    """A template could not be parsed or rendered: an undefined name or field, bad
    syntax, or an operation the sandbox refuses."""

    def __init__(self, message: str, *, template: str | None = None, line: int | None = None):
        self.template = template
        # 1-based line inside the template, when Jinja knows it (syntax errors).
        self.line = line
        super().__init__(message)


def compile_failure(exc: BaseException, source: str) -> TemplateError:
    # Jinja folds constant expressions while it compiles, so an unknown filter or a
    # sandbox refusal (`10|attr('__class__')`) can come from compiling, not rendering.
    if isinstance(exc, jinja2.TemplateSyntaxError):
        return syntax_error(exc, source)
    if isinstance(exc, jinja2.TemplateError):
        return render_error(exc, source)
    return too_deep(source)

def syntax_error(exc: jinja2.TemplateSyntaxError, source: str) -> TemplateError:
    return TemplateError(f"template syntax error: {exc.message}", template=source, line=exc.lineno)

def unparsable(exc: Exception, source: str) -> TemplateError:
    if isinstance(exc, ValueError):  # an integer literal past Python's digit limit
        return TemplateError(f"template has a number too long to read: {exc}", template=source)
    return too_deep(source)

def too_deep(source: str | None) -> TemplateError:
    limit = template_limits().max_nesting
    return TemplateError(
        f"template nests too deeply (over {limit} levels, max_nesting): a very long chain "
        "of operators or deep brackets; split it with {% set %}",
        template=source,
    )

def render_error(exc: Exception, template: str) -> TemplateError:
    if isinstance(exc, TemplateLimitError):
        message = f"template refused: {exc}"
    elif isinstance(exc, jinja2.exceptions.SecurityError):
        message = f"the template sandbox refused: {exc}"
    elif isinstance(exc, RecursionError):
        message = "template recursed too deeply (a macro that calls itself without end?)"
    elif isinstance(exc, MemoryError):
        message = "template ran out of memory"
    elif isinstance(exc, jinja2.UndefinedError):
        message = f"undefined in template: {exc.message}"
    elif isinstance(exc, jinja2.TemplateError):
        message = f"template failed: {exc.message}"
    else:
        message = f"template failed: {type(exc).__name__}: {exc}"
    return TemplateError(message, template=template)
