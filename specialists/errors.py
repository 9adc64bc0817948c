"""Errors a specialist engine raises; the gateway maps them to HTTP answers."""


class ContextLengthError(ValueError):
    """The prompt plus the requested completion does not fit the model's context."""


class EngineRequestError(ValueError):
    """The engine refused the request as invalid (vLLM's validation): a client error,
    ``param`` naming what is wrong when known."""

    def __init__(self, message: str, status: int = 400, param: str | None = None) -> None:
        super().__init__(message)
        self.status = status if 400 <= status < 500 else 400
        self.param = param

    def __reduce__(self) -> tuple[type, tuple[str, int, str | None]]:  # across Ray, whole
        return type(self), (str(self), self.status, self.param)


class EngineOverloadedError(RuntimeError):
    """The engine cannot take another request now; the caller may retry."""


class EngineUnhealthyError(RuntimeError):
    """The engine is not (or no longer) able to serve."""
