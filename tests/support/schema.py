"""Validation of published messages against the JSON Schemas that ship in the package."""

from __future__ import annotations

from functools import cache
from typing import Any

import jsonschema

from device import contract


@cache
def _validator(schema_id: str) -> jsonschema.Draft202012Validator:
    schema = contract.load_schema(schema_id)
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def validate_event(event: dict[str, Any]) -> None:
    _validator(contract.EVENT_SCHEMA).validate(event)


def validate_status(status: dict[str, Any]) -> None:
    _validator(contract.STATUS_SCHEMA).validate(status)


def validate_message(message: dict[str, Any]) -> None:
    """Any message of the contract (event, status, replay request, confirmation), by its `schema`."""
    _validator(message["schema"]).validate(message)
