"""Validation of published messages against the JSON Schemas that ship in the package."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import jsonschema


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files("device").joinpath("schema", name).read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_event(event: dict[str, Any]) -> None:
    _validator("checkin.event.v1.json").validate(event)


def validate_status(status: dict[str, Any]) -> None:
    _validator("checkin.status.v1.json").validate(status)
