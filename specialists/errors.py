"""Errors a specialist engine raises; the gateway maps them to HTTP answers."""


class ContextLengthError(ValueError):
    """The prompt plus the requested completion does not fit the model's context."""


class EngineOverloadedError(RuntimeError):
    """The engine cannot take another request now; the caller may retry."""


class EngineUnhealthyError(RuntimeError):
    """The engine is not (or no longer) able to serve."""
