"""Typed experiment configs: defaults, YAML files, command-line flags and validation.

A config is a dataclass; each field carries its help text and, optionally, its valid choices or
its range in ``field(metadata=...)`` (see :func:`option`). The same metadata builds the command-line flags
(``num_batches`` -> ``--num-batches``), checks values, and writes the resolved config into the
run directory. Values are resolved in this order, later ones winning:

1. the dataclass defaults;
2. the experiment file ``experiments/{algo}/{task}.yaml`` shipped with metarl (the paper's
   settings for that task);
3. a user file given with ``--config FILE``;
4. flags given on the command line.

A resumed run (``--resume DIR``) starts from its saved config instead of layers 1-2, and may
change only the settings that do not alter what it computes (see :func:`resolve`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

import yaml

EXPERIMENTS_DIR = Path(__file__).resolve().parent.parent / "experiments"

C = TypeVar("C")


class ConfigError(ValueError):
    """A bad configuration value; the message names the value and what would be valid."""


#: The largest seed: NumPy's and PyTorch's generators take any seed in [0, 2**32 - 1] (and the
#: offsets metarl adds for held-out tasks), beyond it some raise.
SEED_MAX = 2**32 - 1
#: The most PyTorch threads or worker processes a run may ask for: far above any machine's
#: useful count, and below the thread counts at which OpenMP crashes instead of failing.
THREADS_MAX = 256
#: Every int must fit a 64-bit integer, the widest that torch and NumPy take.
INT_MAX = 2**63 - 1


def option(default: Any, help: str, *, choices: tuple | None = None, minimum: float | None = None,
           exclusive_minimum: bool = True, maximum: float | None = None,
           exclusive_maximum: bool = False, metavar: str | None = None,
           flag: str | None = None, check: Callable[[Any], None] | None = None) -> Any:
    """A config field with its help text and its validity rule.

    ``minimum`` with ``exclusive_minimum=True`` means "must be > minimum" (e.g. learning rates),
    otherwise ">= minimum"; ``maximum`` likewise "<= maximum", or "< maximum" with
    ``exclusive_maximum=True``. Every number must also be finite, and every int at most
    ``INT_MAX``, declared or not. ``metavar`` names the value on a help page (``DIR``);
    ``flag`` is its command-line flag where it is not ``--field-name``. ``check(value)`` is a
    further rule that choices cannot state (``metarl.device``: ``cuda:N`` where device N
    exists); it raises ConfigError naming the value, and is not called on None.

    A ``dict[str, Any]`` field is a mapping of names to scalars: a YAML mapping, or on the
    command line its repeatable flag ``KEY=VALUE`` (the value read as a YAML scalar); each layer
    overlays its keys on the previous layer's.
    """
    metadata = {"help": help, "choices": choices, "minimum": minimum,
                "exclusive_minimum": exclusive_minimum, "maximum": maximum,
                "exclusive_maximum": exclusive_maximum, "metavar": metavar, "flag": flag,
                "check": check}
    if isinstance(default, (list, dict)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def seed_option(default: int, help: str) -> Any:
    """A seed field: an int in [0, SEED_MAX]."""
    return option(default, help, minimum=0, exclusive_minimum=False, maximum=SEED_MAX)


def range_text(metadata: Mapping[str, Any]) -> str:
    """A field's declared range as its error messages say it: "> 0", "<= 1", "in [0, 1)"; ""
    where none is declared."""
    low, high = metadata.get("minimum"), metadata.get("maximum")
    low_open = metadata.get("exclusive_minimum", True)
    high_open = metadata.get("exclusive_maximum", False)
    if low is not None and high is not None:
        return (f"in {'(' if low_open else '['}{_bound(low)}, {_bound(high)}"
                f"{')' if high_open else ']'}")
    if low is not None:
        return f"{'>' if low_open else '>='} {_bound(low)}"
    if high is not None:
        return f"{'<' if high_open else '<='} {_bound(high)}"
    return ""


def _bound(value: float) -> str:
    """A bound as typed: ints in full (4294967295), floats shortest (0.5, 1e-05)."""
    return str(value) if isinstance(value, int) else f"{value:g}"


def _in_range(item: float, metadata: Mapping[str, Any]) -> bool:
    low, high = metadata.get("minimum"), metadata.get("maximum")
    if low is not None and not (item > low if metadata.get("exclusive_minimum", True)
                                else item >= low):
        return False
    return high is None or (item < high if metadata.get("exclusive_maximum", False)
                            else item <= high)


def flag_name(field_name: str) -> str:
    return "--" + field_name.replace("_", "-")


def _field_flag(f: dataclasses.Field) -> str:
    return f.metadata.get("flag") or flag_name(f.name)


def _is_mapping(annotation: Any) -> bool:
    return annotation is dict or typing.get_origin(annotation) is dict


def _value_of(text: str) -> Any:
    """A ``KEY=VALUE`` value as YAML reads it, except that any text Python reads as a float
    (``1e-2``, which YAML 1.1 leaves a string; ``nan``, ``inf``) is one, so that the range
    check refuses a non-finite number whatever its spelling."""
    return _number_of_text(yaml.safe_load(text))


def _number_of_text(value: Any) -> Any:
    """``value``, or the float of a string Python reads as one (see :func:`_value_of`)."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value


def _mapping(name: str, value: Any) -> dict[str, Any]:
    """A mapping field's value from YAML (a mapping) or the command line (``KEY=VALUE``
    strings, each value a YAML scalar); ConfigError naming the bad entry."""
    if isinstance(value, Mapping):  # from YAML: 'nan' or '1e-2' is text there too
        items = [(key, _number_of_text(item)) for key, item in value.items()]
    elif isinstance(value, (list, tuple)) and all(isinstance(item, str) for item in value):
        items = []
        for item in value:
            key, equals, text = item.partition("=")
            if not equals or not key.strip():
                raise ConfigError(f"{name}: {item!r} is not KEY=VALUE")
            try:
                items.append((key.strip(), _value_of(text) if text.strip() else None))
            except yaml.YAMLError:
                raise ConfigError(f"{name}: {item!r} has no valid value (a number, a word, "
                                  "true or false)") from None
    else:
        raise ConfigError(f"{name}={value!r} is not a mapping of name: value")
    out: dict[str, Any] = {}
    for key, item in items:
        if not isinstance(key, str) or not key.isidentifier():
            raise ConfigError(f"{name}: key {key!r} is not a name (letters, digits, '_')")
        if item is None or not isinstance(item, (bool, int, float, str)):
            raise ConfigError(f"{name}: {key}={item!r} is not a number, a word, true or false")
        out[key] = item
    return out


def field_types(config_cls: type) -> dict[str, Any]:
    """The resolved annotation of every field (annotations are strings under __future__)."""
    hints = typing.get_type_hints(config_cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(config_cls)}


def _base_type(annotation: Any) -> Any:
    """``int | None`` -> ``int``; ``tuple[int, ...]`` stays as is."""
    if _is_union(annotation):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0]
    return annotation


def _is_union(annotation: Any) -> bool:
    return isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union


def _type_name(base: Any) -> str:
    """``int`` -> "int"; ``tuple[int, ...]`` -> "list of int"."""
    if typing.get_origin(base) is tuple:
        return f"list of {_type_name(typing.get_args(base)[0])}"
    return getattr(base, "__name__", str(base))


def _scalar(value: Any, base: Any) -> Any:
    """``value`` as an int, float or str; ValueError when it is not one (e.g. 2.5 or true for
    an int: YAML's ``true`` must not become 1, nor 40.7 silently 40)."""
    if base is int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        return int(value)
    if base is float:
        if isinstance(value, bool):
            raise ValueError
        return float(value)
    if base is str:
        if isinstance(value, (list, tuple, dict)):
            raise ValueError
        return str(value)
    return value


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Convert a YAML or command-line value to the field's type, or raise ConfigError.

    An empty value (``fast_lr:`` or ``null`` in YAML) is only valid where the annotation
    allows None.
    """
    base = _base_type(annotation)
    if value is None:
        if _is_union(annotation) and type(None) in typing.get_args(annotation):
            return None
        raise ConfigError(f"{name} is empty; give a {_type_name(base)}")
    if _is_mapping(base):
        return _mapping(name, value)
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
            if any(item is None for item in value):
                raise ValueError
            return tuple(_scalar(item, item_type) for item in value)
        return _scalar(value, base)
    except (TypeError, ValueError):
        pass
    raise ConfigError(f"{name}={value!r} is not a valid {_type_name(base)}")


def validate(config: Any) -> None:
    """Check every field against its choices and range (every number finite, every int at most
    ``INT_MAX``), then the config's own ``check()`` (rules across fields) where it has one;
    raise ConfigError naming the first bad value."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        choices = f.metadata.get("choices")
        if choices is not None and value not in choices:
            valid = ", ".join(str(c) for c in choices)
            raise ConfigError(f"{f.name}={value!r} is not valid; choose from: {valid}")
        if value is not None:
            if f.metadata.get("check") is not None:  # a field's own rule (``option``'s check)
                f.metadata["check"](value)
            _check_numbers(f.name, value, f.metadata)
    check = getattr(config, "check", None)  # rules across fields, where a config has them
    if callable(check):
        check()


def _check_numbers(name: str, value: Any, metadata: Mapping[str, Any]) -> None:
    """The range rule of :func:`option` for one field's value (or each item of a tuple)."""
    bounded = metadata.get("minimum") is not None or metadata.get("maximum") is not None
    wanted = range_text(metadata)
    if isinstance(value, Mapping):
        for key, item in value.items():
            _check_numbers(f"{name}: {key}", item, metadata)
        return
    for item in value if isinstance(value, tuple) else (value,):
        if isinstance(item, bool) or not isinstance(item, (int, float)):
            if bounded:
                raise ConfigError(f"{name}={value!r} must be a number {wanted}")
            continue
        if not math.isfinite(item):
            raise ConfigError(f"{name}={value!r} must be a finite number"
                              + (f" {wanted}" if wanted else ""))
        if not _in_range(item, metadata):
            raise ConfigError(f"{name}={value!r} must be {wanted}")
        if isinstance(item, int) and abs(item) > INT_MAX:
            raise ConfigError(f"{name}={value!r} must be at most {INT_MAX} (a 64-bit integer)")


def from_mapping(config_cls: type[C], values: Mapping[str, Any], *, source: str,
                 base: C | None = None) -> C:
    """Overlay ``values`` on ``base`` (or the defaults); unknown keys are a ConfigError."""
    types_by_name = field_types(config_cls)
    unknown = sorted(set(values) - set(types_by_name))
    if unknown:
        valid = ", ".join(sorted(types_by_name))
        raise ConfigError(f"unknown option(s) {', '.join(unknown)} in {source}; valid options: {valid}")
    try:
        coerced = {name: coerce(name, value, types_by_name[name])
                   for name, value in values.items()}
    except ConfigError as error:  # say where the value was written
        raise ConfigError(f"{error} (from {source})") from None
    if base is None:
        return config_cls(**coerced)
    for name, value in coerced.items():  # a mapping overlays its keys on the layer below
        if _is_mapping(_base_type(types_by_name[name])) and value is not None:
            coerced[name] = {**(getattr(base, name) or {}), **value}
    return dataclasses.replace(base, **coerced)


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; a missing or malformed file is a ConfigError."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"config file {path} is a folder; give a YAML file")
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


def add_flags(parser: argparse.ArgumentParser, config_cls: type, *,
              skip: tuple[str, ...] = (), shown_defaults: Mapping[str, str] | None = None) -> None:
    """One flag per config field, its help text ending with the effective default.

    The flags' own defaults are None, so only explicit flags override the YAML layers; the help
    shows instead ``shown_defaults[name]`` (see :func:`default_texts`), else the dataclass
    default. ``parser`` may also be an argument group of one.
    """
    if shown_defaults is None:
        shown_defaults = default_texts(config_cls())
    for f in dataclasses.fields(config_cls):
        if f.name in skip:
            continue
        base = _base_type(field_types(config_cls)[f.name])
        text = f.metadata.get("help", "").replace("%", "%%")
        shown = shown_defaults.get(f.name)
        if shown is not None:
            text += f" (default: {shown.replace('%', '%%')})"
        kwargs: dict[str, Any] = {"default": None, "help": text}
        if base is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif _is_mapping(base):
            kwargs["action"] = "append"
            kwargs["metavar"] = f.metadata.get("metavar") or "KEY=VALUE"
        else:
            kwargs["metavar"] = _metavar(f, base)
            if typing.get_origin(base) is tuple:
                kwargs["nargs"] = "+"
        parser.add_argument(_field_flag(f), dest=f.name, **kwargs)


def _metavar(f: dataclasses.Field, base: Any) -> str:
    """How a help page names a field's value: its choices, else N (int), X (float), the field's
    name in capitals (str), unless the field declares its own."""
    if f.metadata.get("metavar") is not None:
        return f.metadata["metavar"]
    choices = f.metadata.get("choices")
    if choices is not None:
        return "{" + ",".join(str(c) for c in choices) + "}"
    if typing.get_origin(base) is tuple:
        base = typing.get_args(base)[0]
    return {int: "N", float: "X"}.get(base, f.name.upper())


def default_text(value: Any) -> str:
    """A value as a help page shows it: lists space-separated (as typed on the command line),
    booleans as on/off, an empty string as "none"."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, (list, tuple)):
        return " ".join(default_text(item) for item in value)
    if isinstance(value, Mapping):
        return " ".join(f"{key}={default_text(item)}" for key, item in value.items()) or "none"
    if value is None or value == "":
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def default_texts(config: Any) -> dict[str, str]:
    """Every field of ``config`` as :func:`default_text` shows it."""
    return {f.name: default_text(getattr(config, f.name)) for f in dataclasses.fields(config)}


def shipped_defaults(config_cls: type[C], algo: str, task: str) -> C:
    """What a new run takes for every option it is not given: the dataclass defaults overlaid
    with ``experiments/{algo}/{task}.yaml`` where metarl ships one."""
    config = config_cls()
    shipped = experiment_file(algo, task)
    if shipped.is_file():
        config = from_mapping(config_cls, read_yaml(shipped), source=str(shipped), base=config)
    return config


def explicit_flags(args: argparse.Namespace, config_cls: type) -> dict[str, Any]:
    """The config fields the user set on the command line."""
    names = {f.name for f in dataclasses.fields(config_cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def resolve(config_cls: type[C], *, algo: str, task: str, config_file: str | None,
            flags: Mapping[str, Any], base: Mapping[str, Any] | None = None,
            may_change: Collection[str] = ()) -> C:
    """Defaults < experiments/{algo}/{task}.yaml < --config FILE < flags; validated.

    ``base`` (a saved run's config, when resuming) replaces the first two layers, and then the
    file and flags may only change the fields named in ``may_change``: any other change would
    make the resumed run differ from an uninterrupted one, so it is a ConfigError.
    """
    if base is not None:
        config = from_mapping(config_cls, base, source="the saved run config")
    else:
        config = shipped_defaults(config_cls, algo, task)
    saved = config
    if config_file is not None:
        config = from_mapping(config_cls, run_config_values(config_file, algo),
                              source=config_file, base=config)
    config = from_mapping(config_cls, flags, source="the command line", base=config)
    if base is not None:
        check_unchanged(saved, config, may_change=may_change)
    validate(config)
    return config


def run_config_values(path: str | Path, algo: str) -> dict[str, Any]:
    """The options in the YAML file ``path`` for a run of ``algo``. A run's own config.yaml
    names its ``algo``: dropped when it is ``algo`` (the file then repeats that run's
    settings), a ConfigError naming the command to use when it is another."""
    values = read_yaml(path)
    if "algo" in values:
        if values["algo"] != algo:
            raise ConfigError(f"config file {path} is the config of a {values['algo']!r} run "
                              f"(its algo: key); use it with python -m metarl.run "
                              f"{values['algo']}, not {algo}")
        values = {key: value for key, value in values.items() if key != "algo"}
    return values


def check_unchanged(saved: Any, config: Any, *, may_change: Collection[str]) -> None:
    """Fail when ``config`` differs from the resumed run's ``saved`` config outside
    ``may_change``, naming each changed key with its saved and new value."""
    names = [f.name for f in dataclasses.fields(config)]
    changed = [f"{name} (saved {getattr(saved, name)!r}, new {getattr(config, name)!r})"
               for name in names
               if name not in may_change and getattr(saved, name) != getattr(config, name)]
    if changed:
        allowed = ", ".join(name for name in names if name in may_change) or "nothing"
        raise ConfigError(f"--resume cannot change {'; '.join(changed)}: a resumed run "
                          f"continues exactly like the uninterrupted one; it may change only "
                          f"{allowed}")
