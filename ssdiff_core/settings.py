"""A guidance stage's settings, declared once: on the field of the stage's dataclass that holds
the value, with its default, range, step and a one-line meaning. The node schemas are derived
from these declarations (nodes/stage_inputs.py), the stages are built from the values a node
executes with (`from_settings`), and the tests hold the workflows to them. Plain Python: no
ComfyUI here."""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

SETTING = "ssdiff_setting"
"""The key of a declared field's metadata."""


@dataclass(frozen=True)
class Setting:
    """One value a user sets: `name` is the node input's name (the field's, unless declared)."""
    name: str
    default: float | int
    minimum: float | int
    maximum: float | int
    step: float | None
    tooltip: str


def setting(default: float | int, minimum: float | int, maximum: float | int, tooltip: str,
            step: float | None = None, name: str | None = None) -> Any:
    """A dataclass field that is a user setting: `field: float = setting(0.4, 0.01, 0.99, "...")`."""
    return dataclasses.field(default=default, metadata={SETTING: (name, minimum, maximum, step, tooltip)})


def _nested(field: dataclasses.Field) -> type | None:
    """The dataclass of a field made with default_factory=<dataclass> (e.g. a RepeatWindow)."""
    factory = field.default_factory
    return factory if isinstance(factory, type) and dataclasses.is_dataclass(factory) else None


def declared(cls: type) -> tuple[Setting, ...]:
    """The settings of a stage's dataclass in field order, those of nested dataclasses in place."""
    found = []
    for field in dataclasses.fields(cls):
        if SETTING in field.metadata:
            name, minimum, maximum, step, tooltip = field.metadata[SETTING]
            found.append(Setting(name or field.name, field.default, minimum, maximum, step, tooltip))
        elif _nested(field) is not None:
            found.extend(declared(_nested(field)))
    return tuple(found)


Stage = TypeVar("Stage")


def setting_values(cls: type, values: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments that give `cls` the settings in `values` (by input name); nested
    dataclasses built from theirs. An unknown name is an error: it would be silently lost."""
    unknown = set(values) - {entry.name for entry in declared(cls)}
    if unknown:
        raise TypeError(f"{cls.__name__} declares no setting {', '.join(sorted(unknown))}")
    arguments = {}
    for field in dataclasses.fields(cls):
        if SETTING in field.metadata:
            name = field.metadata[SETTING][0] or field.name
            if name in values:
                arguments[field.name] = values[name]
        elif _nested(field) is not None:
            nested = _nested(field)
            own = {entry.name for entry in declared(nested)}
            arguments[field.name] = nested(**setting_values(nested, {k: v for k, v in values.items() if k in own}))
    return arguments


def from_settings(cls: type[Stage], values: Mapping[str, Any], **others: Any) -> Stage:
    """`cls` built from the settings in `values` (by input name) and its other fields in `others`."""
    return cls(**setting_values(cls, values), **others)


def split_settings(values: Mapping[str, Any], cls: type) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the values among `values` that `cls` declares, the others): a node's settings shared out
    between its stage and a term of that stage."""
    own = {entry.name for entry in declared(cls)}
    return ({name: value for name, value in values.items() if name in own},
            {name: value for name, value in values.items() if name not in own})
