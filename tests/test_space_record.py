"""The space a sweep started with, stored beside it and compared on `--resume` (no Ray)."""

import json

import pytest

from slmray.errors import ConfigError
from slmray.sweep.space import SearchSpace
from slmray.sweep.space_record import (
    SPACE_FILE, canonical, check_resumed_space, differences, store_space, stored_space,
)
from slmray.train.presets import get_model


def space(**fields) -> SearchSpace:
    base = dict(model=["tiny"], per_device_batch=[1, 2], num_gpus=[1], attention=["sdpa"], strategy=["ddp"],
                seq_len=32, steps=3, warmup_steps=0, device="cpu")
    return SearchSpace(**{**base, **fields})


def test_the_canonical_space_is_plain_json_and_equal_for_equal_spaces():
    shaped = space(model=["tiny", get_model("tiny", d_model=16, name="tiny-16")])
    stored = canonical(shaped)
    assert json.loads(json.dumps(stored)) == stored
    assert stored["model"][1]["d_model"] == 16 and stored["model"][0] == "tiny"
    assert differences(stored, canonical(space(model=["tiny", get_model("tiny", d_model=16, name="tiny-16")]))) == []


@pytest.mark.parametrize("changed, first", [
    (dict(steps=300), "steps: 3 -> 300"),
    (dict(per_device_batch=[1, 4]), "per_device_batch[1]: 2 -> 4"),
    (dict(num_gpus=[1, 2]), "num_gpus: [1] -> [1, 2]"),
    (dict(model=["tiny", get_model("tiny", d_model=8, name="tiny-8")]), 'model: ["tiny"] -> ["tiny", {"name": "tiny-8",'),
    (dict(per_device_batch={"tiny": [1, 2]}), 'per_device_batch: [1, 2] -> {"tiny": [1, 2]}'),
])
def test_the_first_field_that_changed_is_named_with_both_values(changed, first):
    found = differences(canonical(space()), canonical(space(**changed)))
    assert len(found) == 1 and found[0].startswith(first), found


def test_inside_a_model_the_field_that_changed_is_named():
    old = canonical(space(model=[get_model("tiny", d_model=8, name="t")]))
    new = canonical(space(model=[get_model("tiny", d_model=16, name="t")]))
    assert differences(old, new) == ["model[0].d_model: 8 -> 16"]


def test_a_field_added_since_the_sweep_started_counts_as_its_default():
    old = canonical(space())
    del old["max_failures"], old["prices"]  # a stored space that predates these fields
    assert differences(old, canonical(space())) == []
    assert differences(old, canonical(space(max_failures=3))) == ["max_failures: 1 -> 3"]


def test_a_changed_space_is_refused_in_one_line_naming_the_first_change(tmp_path):
    store_space(str(tmp_path), space(), "space.py")
    assert check_resumed_space(str(tmp_path), "s", space(), "space.py", allow_changed=False) is None
    with pytest.raises(ConfigError) as refused:
        check_resumed_space(str(tmp_path), "s", space(steps=300, seq_len=64), "space.py", allow_changed=False)
    message = str(refused.value)
    assert message.startswith("--resume: space.py changed since sweep s started: seq_len: 32 -> 64 "
                              "(fields changed: seq_len, steps); "), message
    assert message.endswith("or add --allow-changed-space to run the remaining trials with the new one")
    assert "\n" not in message
    assert stored_space(str(tmp_path)) == canonical(space())  # the refusal stored nothing


def test_a_change_allowed_says_what_happens_and_becomes_the_sweeps_space(tmp_path):
    store_space(str(tmp_path), space(), "space.py")
    line = check_resumed_space(str(tmp_path), "s", space(steps=300), "space.py", allow_changed=True)
    assert line == ("warning: --allow-changed-space: space.py changed since sweep s started (steps; first: "
                    "steps: 3 -> 300): the remaining trials run with the new settings, over the configurations "
                    "the sweep planned when it started")
    assert stored_space(str(tmp_path)) == canonical(space(steps=300))
    assert check_resumed_space(str(tmp_path), "s", space(steps=300), "space.py", allow_changed=False) is None


def test_a_sweep_begun_before_spaces_were_stored_resumes_with_a_note_and_stores_it(tmp_path):
    line = check_resumed_space(str(tmp_path), "old", space(), "space.py", allow_changed=False)
    assert line.startswith("note: sweep old was started before slmray stored a sweep's space: it resumes with "
                           "space.py as it is now, unchecked")
    assert "\n" not in line and stored_space(str(tmp_path)) == canonical(space())
    assert sorted(p.name for p in tmp_path.iterdir()) == [SPACE_FILE]  # written whole: no staging file left


def test_a_damaged_stored_space_is_one_line(tmp_path):
    (tmp_path / SPACE_FILE).write_text("{not json")
    with pytest.raises(ConfigError, match=rf"^--resume: {tmp_path / SPACE_FILE} is not a stored space"):
        check_resumed_space(str(tmp_path), "s", space(), "space.py", allow_changed=False)


def test_the_space_is_stored_and_checked_on_s3(s3_server, monkeypatch):
    for k, v in s3_server.items():
        monkeypatch.setenv(k, v)
    sweep_dir = "s3://slmray-test/sweeps/s"
    store_space(sweep_dir, space(), "space.py")
    assert stored_space(sweep_dir) == canonical(space())
    with pytest.raises(ConfigError, match=r"^--resume: space.py changed since sweep s started: steps: 3 -> 4;"):
        check_resumed_space(sweep_dir, "s", space(steps=4), "space.py", allow_changed=False)
    assert check_resumed_space(sweep_dir, "s", space(steps=4), "space.py", allow_changed=True).startswith("warning: ")
    assert stored_space(sweep_dir) == canonical(space(steps=4))
