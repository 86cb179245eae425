"""Typed experiment configs: defaults, YAML files, command-line flags and validation.

A config is a dataclass; each field carries its help text and, optionally, its valid choices or
a lower bound in ``field(metadata=...)``. The same metadata builds the command-line flags
(``num_batches`` -> ``--num-batches``), checks values, and writes the resolved config into the
run directory. Values are resolved in this order, later ones winning:

1. the dataclass defaults;
2. the experiment file ``experiments/{algo}/{task}.yaml`` shipped with metarl (spec defaults);
3. a user file given with ``--config FILE``;
4. flags given on the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"

C = TypeVar("C")


class ConfigError(ValueError):
    """A bad configuration value; the message names the value and what would be valid."""


def option(default: Any, help: str, *, choices: tuple | None = None, minimum: float | None = None,
           exclusive_minimum: bool = True) -> Any:
    """A config field with its help text and its validity rule.

    ``minimum`` with ``exclusive_minimum=True`` means "must be > minimum" (e.g. learning rates),
    otherwise ">= minimum".
    """
    metadata = {"help": help, "choices": choices, "minimum": minimum,
                "exclusive_minimum": exclusive_minimum}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def field_types(config_cls: type) -> dict[str, Any]:
    """The resolved annotation of every field (annotations are strings under __future__)."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``tuple[int, ...]`` stays as is."""
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise ConfigError."""
    base = _base_type(annotation)
    if value is None:
        return None
    try:
        if base is bool:
            if isinstance(value, bool):
                return value
            text = str(value).lower()
            if text in ("true", "1", "yes"):
                return True
            if text in ("false", "0", "no"):
                return False
            raise ValueError
        if typing.get_origin(base) is tuple:
            (item_type, *_) = typing.get_args(base)
            if isinstance(value, str):
                value = [v for v in value.replace(",", " ").split() if v]
            return tuple(item_type(v) for v in value)
        if base is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if base is float:
            return float(value)
        if base is str:
            return str(value)
    except (TypeError, ValueError):
        pass
    else:
        return value
    type_name = getattr(base, "__name__", str(base))
    raise ConfigError(f"{name}={value!r} is not a valid {type_name}")


def validate(config: Any) -> None:
    """Check every field against its choices and bounds; raise ConfigError naming the first bad one."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            valid = ", ".join(str(c) for c in choices)
            raise ConfigError(f"{f.name}={value!r} is not valid; choose from: {valid}")
        minimum = f.metadata.get("minimum")
        if minimum is None or value is None:
            continue
        items = value if isinstance(value, tuple) else (value,)
        for item in items:
            if not isinstance(item, (int, float)) or math.isnan(item):
                raise ConfigError(f"{f.name}={value!r} must be a number")
            if f.metadata.get("exclusive_minimum", True):
                if not item > minimum:
                    raise ConfigError(f"{f.name}={value!r} must be > {minimum:g}")
            elif not item >= minimum:
                raise ConfigError(f"{f.name}={value!r} must be >= {minimum:g}")
    check = getattr(config, "check", None)
    if check is not None:
        check()


def from_mapping(config_cls: type[C], values: Mapping[str, Any], *, source: str,
                 base: C | None = None) -> C:
    """Overlay ``values`` on ``base`` (or the defaults); unknown keys are a ConfigError."""
    types_by_name = field_types(config_cls)
    unknown = sorted(set(values) - set(types_by_name))
    if unknown:
        valid = ", ".join(sorted(types_by_name))
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in {source}; valid options: {valid}")
    coerced = {name: coerce(name, value, types_by_name[name]) for name, value in values.items()}
    if base is None:
        return config_cls(**coerced)
    return dataclasses.replace(base, **coerced)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}")
    try:
        loaded = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}".splitlines()[0]) from None
    if loaded is None:
        return {}
    if not isinstance(loaded, dict):
        raise ConfigError(f"config file {path} must hold a mapping of option: value")
    return loaded


def experiment_file(algo: str, task: str) -> Path:
    """The shipped defaults for one algorithm x task, e.g. experiments/maml/sine.yaml."""
    return EXPERIMENTS_DIR / algo / f"{task}.yaml"


def to_dict(config: Any) -> dict[str, Any]:
    """A YAML-friendly dict (tuples become lists)."""
    out = {}
    for name, value in dataclasses.asdict(config).items():
        out[name] = list(value) if isinstance(value, tuple) else value
    return out


def write_yaml(config: Any, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(to_dict(config), sort_keys=False))


def add_flags(parser: argparse.ArgumentParser, config_cls: type, *, skip: tuple[str, ...] = ()) -> None:
    """One flag per config field; defaults are None so only explicit flags override."""
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        base = _base_type(field_types(config_cls)[f.name])
        kwargs: dict[str, Any] = {"default": None, "help": f.metadata.get("help", "")}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(base) is tuple:
            kwargs["nargs"] = "+"
            kwargs["metavar"] = "N"
        else:
            kwargs["metavar"] = f.name.upper()
        parser.add_argument(flag_name(f.name), dest=f.name, **kwargs)


def explicit_flags(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def resolve(config_cls: type[C], *, algo: str, task: str, config_file: str | None,
            flags: Mapping[str, Any], base: Mapping[str, Any] | None = None) -> C:
    """Defaults < experiments/{algo}/{task}.yaml < --config FILE < flags; validated.

    ``base`` (a saved run's config, when resuming) replaces the first two layers.
    """
    if base is not None:
        config = from_mapping(config_cls, base, source="the saved run config")
    else:
        config = config_cls()
        shipped = experiment_file(algo, task)
        if shipped.is_file():
            config = from_mapping(config_cls, read_yaml(shipped), source=str(shipped), base=config)
    if config_file is not None:
        config = from_mapping(config_cls, read_yaml(config_file), source=config_file, base=config)
    config = from_mapping(config_cls, flags, source="the command line", base=config)
    validate(config)
    return config
