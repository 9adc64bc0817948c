"""``response_format``: the form a chat answer must take (free text, any JSON object, or
JSON matching a schema), checked here and carried out by the engine's structured-output
backend (vLLM's), which constrains decoding so the answer parses whatever the model."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictStr,
    field_validator,
    model_validator,
)


def checked_schema(value: dict[str, Any]) -> dict[str, Any]:
    """``value`` if it is a valid JSON schema (by its own ``$schema``, else the latest
    draft), else a ValueError saying what is wrong."""
    from jsonschema import SchemaError, validators

    try:
        validators.validator_for(value).check_schema(value)
    except SchemaError as exc:
        raise ValueError(f"not a valid JSON schema: {exc.message}") from None
    return value


class JSONSchemaFormat(BaseModel):
    """``response_format.json_schema``: the schema the answer must match."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: StrictStr = Field(pattern=r"^[a-zA-Z0-9_-]{1,64}$")
    description: StrictStr | None = None
    json_schema: dict[str, Any] = Field(alias="schema")
    strict: StrictBool | None = None

    @field_validator("json_schema")
    @classmethod
    def _valid_schema(cls, value: dict[str, Any]) -> dict[str, Any]:
        return checked_schema(value)


class ResponseFormat(BaseModel):
    """OpenAI's ``response_format``: free text, any JSON object, or JSON matching a schema
    (decoding constrained by the engine, so the answer parses whatever the model)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["text", "json_object", "json_schema"]
    json_schema: JSONSchemaFormat | None = None

    @model_validator(mode="after")
    def _schema_iff_json_schema(self) -> ResponseFormat:
        if (self.type == "json_schema") != (self.json_schema is not None):
            raise ValueError("json_schema is given with, and only with, type 'json_schema'")
        return self

    def for_engine(self) -> dict[str, Any] | None:
        """What the engine is sent (None for free text)."""
        if self.type == "text":
            return None
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)
