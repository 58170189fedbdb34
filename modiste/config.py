"""Settings: dataclasses of hyper-parameters, changed by name from the command line."""

from __future__ import annotations

from dataclasses import asdict, fields


def with_overrides(config, overrides: dict | None):
    """A copy of a settings dataclass with some fields replaced; an unknown name is a ValueError
    that lists the known ones."""
    if not overrides:
        return type(config)(**asdict(config))
    known = {f.name for f in fields(config)}
    unknown = set(overrides) - known
    if unknown:
        raise ValueError(f"unknown setting(s) {', '.join(sorted(unknown))} for {type(config).__name__}; "
                         f"known: {', '.join(sorted(known))}")
    return type(config)(**{**asdict(config), **overrides})


