"""The space a sweep was started with, stored in its folder (`space.json`) and checked on `--resume`.

Tune restores a sweep's plan (its searcher) from the sweep's state, while each trial is planned
and run with the space file as it reads now: a space edited between the start and a `--resume`
would mix the old configurations with the new settings without a word.  So the space's
canonical form is written when the sweep starts, and a resume whose space differs is refused,
naming the first field that changed, unless `--allow-changed-space` says to go on with it.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from slmray.errors import ConfigError
from slmray.results.storage import exists, filesystem, join, write_atomically
from slmray.sweep.space import SearchSpace

SPACE_FILE = "space.json"


def canonical(space: SearchSpace) -> dict[str, Any]:
    """Every field of the space as plain JSON values, in the declared order (a ModelConfig as its
    fields), so two spaces compare equal exactly when every trial would run the same."""
    return {f.name: _plain(getattr(space, f.name)) for f in dataclasses.fields(space)}


def _plain(value: Any) -> Any:
    return json.loads(json.dumps(value, default=_as_json))


def _as_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def _defaults() -> dict[str, Any]:
    """Each field's default, for a field a stored space predates (added to SearchSpace since)."""
    out = {}
    for f in dataclasses.fields(SearchSpace):
        if f.default is not dataclasses.MISSING:
            out[f.name] = _plain(f.default)
        elif f.default_factory is not dataclasses.MISSING:
            out[f.name] = _plain(f.default_factory())
    return out


def store_space(sweep_dir: str, space: SearchSpace, space_path: str) -> None:
    """Write the space into the sweep's folder (local or s3://), whole or not at all."""
    body = json.dumps({"space_file": space_path, "space": canonical(space)}, indent=1).encode()

    def write(fs, path: str) -> None:
        with fs.open_output_stream(path) as out:
            out.write(body)

    write_atomically(join(sweep_dir, SPACE_FILE), write)


def stored_space(sweep_dir: str) -> dict[str, Any] | None:
    """The canonical space the sweep was started with; None for a sweep begun before it was stored."""
    uri = join(sweep_dir, SPACE_FILE)
    if not exists(uri):
        return None
    fs, path = filesystem(uri)
    with fs.open_input_stream(path) as f:
        text = f.read().decode()
    try:
        return json.loads(text)["space"]
    except (ValueError, KeyError, TypeError):
        raise ConfigError(f"--resume: {uri} is not a stored space (JSON with a 'space' object); "
                          "restore it, or remove it to resume without the check") from None


def differences(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """One `field: old -> new` per field that differs, in the space's field order; nested values
    (a model's shape, a batch list per model) name the first place inside that differs."""
    defaults = _defaults()
    found = []
    for name, new in current.items():
        old = stored.get(name, defaults.get(name))
        change = _first_difference(old, new, name)
        if change:
            found.append(change)
    return found


def _first_difference(old: Any, new: Any, where: str) -> str | None:
    if old == new:
        return None
    if isinstance(old, dict) and isinstance(new, dict):
        for key in [*old, *(k for k in new if k not in old)]:
            change = _first_difference(old.get(key), new.get(key), f"{where}.{key}")
            if change:
                return change
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            change = _first_difference(a, b, f"{where}[{i}]")
            if change:
                return change
    return f"{where}: {_show(old)} -> {_show(new)}"


def _show(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _field(change: str) -> str:
    """The top-level field a difference is in: `model[1].d_model: ...` -> `model`."""
    return change.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]


def check_resumed_space(sweep_dir: str, name: str, space: SearchSpace, space_path: str, allow_changed: bool) -> str | None:
    """Compare the space a resume runs with the one the sweep started with.  Refuses a change
    (ConfigError) unless `allow_changed`; returns the one line to print (a change allowed, or a
    sweep that predates stored spaces), or None when the space is the one the sweep started with.
    The current space is stored where the line says the sweep goes on with it."""
    stored = stored_space(sweep_dir)
    if stored is None:
        store_space(sweep_dir, space, space_path)
        return (f"note: sweep {name} was started before slmray stored a sweep's space: it resumes with {space_path} "
                "as it is now, unchecked (stored for the next --resume)")
    changes = differences(stored, canonical(space))
    if not changes:
        return None
    fields = ", ".join(dict.fromkeys(_field(c) for c in changes))
    if not allow_changed:
        raise ConfigError(f"--resume: {space_path} changed since sweep {name} started: {changes[0]}"
                          f"{f' (fields changed: {fields})' if len(changes) > 1 else ''}; resume with the space it "
                          "started with, or add --allow-changed-space to run the remaining trials with the new one")
    store_space(sweep_dir, space, space_path)
    return (f"warning: --allow-changed-space: {space_path} changed since sweep {name} started ({fields}; first: "
            f"{changes[0]}): the remaining trials run with the new settings, over the configurations the sweep "
            "planned when it started")
