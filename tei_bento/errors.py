"""TEI's error taxonomy.

Every failure the engine can report maps to one of TEI's `error_type` values, and the
HTTP status follows from the type exactly as TEI's router maps it, so clients that branch
on status codes keep working.
"""

from __future__ import annotations

from enum import Enum


class ErrorType(str, Enum):
    UNHEALTHY = "Unhealthy"
    BACKEND = "Backend"
    OVERLOADED = "Overloaded"
    VALIDATION = "Validation"
    TOKENIZER = "Tokenizer"
    EMPTY = "Empty"


STATUS_BY_TYPE: dict[ErrorType, int] = {
    ErrorType.UNHEALTHY: 503,
    ErrorType.BACKEND: 424,
    ErrorType.OVERLOADED: 429,
    ErrorType.VALIDATION: 422,
    ErrorType.TOKENIZER: 422,
    ErrorType.EMPTY: 400,
}


class TEIError(Exception):
    """An error with a TEI `error_type`; `status` may override the type's default code."""

    error_type: ErrorType = ErrorType.BACKEND
    prefix: str = ""
    code: str | None = None
    """A machine-readable code where a client's protocol has one (OpenAI's `code`)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self._status = status

    @property
    def status(self) -> int:
        return self._status or STATUS_BY_TYPE[self.error_type]

    @property
    def error(self) -> str:
        """The message as TEI displays it (its error enum adds a prefix per type)."""
        return f"{self.prefix}{self.message}"

    def without_prefix(self) -> "TEIError":
        """TEI's router builds some errors directly, without the core error's prefix."""
        self.prefix = ""
        return self


class ValidationError(TEIError):
    error_type = ErrorType.VALIDATION
    prefix = "Input validation error: "


class EmptyError(TEIError):
    error_type = ErrorType.EMPTY
    prefix = "Input validation error: "


class TokenizerError(TEIError):
    error_type = ErrorType.TOKENIZER
    prefix = "tokenizer error "


class OverloadedError(TEIError):
    error_type = ErrorType.OVERLOADED

    def __init__(self, message: str = "Model is overloaded") -> None:
        super().__init__(message)


class BackendError(TEIError):
    error_type = ErrorType.BACKEND
    prefix = "Backend error: "


class WrongModelTypeError(TEIError):
    """A route that the loaded model cannot serve (TEI answers 424 with a Backend error)."""

    error_type = ErrorType.BACKEND
    prefix = "Backend error: "


class UnhealthyError(TEIError):
    error_type = ErrorType.UNHEALTHY
