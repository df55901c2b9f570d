"""One configuration identity (issue 26): the configuration keys listed once, in
`slmray.train.config`, and every measurement of the trainer stored or said not to be."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

from slmray.core.row import NOT_STORED, make_row
from slmray.core.schema import COLUMNS
from slmray.train.config import CONFIG_KEYS, ROW_DEFAULTS, TrainConfig, config_label, is_fp8
from slmray.train.presets import PRESETS

ROOT = Path(__file__).resolve().parents[1]
DEFINED_IN = ROOT / "slmray" / "train" / "config.py"


def _names(node: ast.AST) -> list[str]:
    """What each element of a literal names: a string, `row["key"]`, or `row.key`."""
    names = []
    for element in getattr(node, "elts", ()):
        if isinstance(element, ast.Subscript):
            element = element.slice
        if isinstance(element, ast.Constant) and isinstance(element.value, str):
            names.append(element.value)
        elif isinstance(element, ast.Attribute):
            names.append(element.attr)
    return names


def key_lists(source: str) -> list[tuple[int, list[str]]]:
    """(line, names) of each tuple, list or set literal in `source` that names more than half the
    configuration keys and at most one other name: a list of the keys in all but name (a subset
    such as the space's LISTABLE, the fields one value or a list, names fewer).  Column
    lists of a file format (a CSV's header, a frame's columns) name many other columns and pass."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
            names = _names(node)
            keys = [n for n in names if n in CONFIG_KEYS]
            if len(set(keys)) > len(CONFIG_KEYS) // 2 and len(names) - len(keys) <= 1:
                found.append((node.lineno, names))
    return found


def test_no_second_list_of_the_configuration_keys():
    files = sorted((ROOT / "slmray").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    assert len(files) > 40
    second = [
        f"{path.relative_to(ROOT)}:{line}: {names}"
        for path in files if path != DEFINED_IN
        for line, names in key_lists(path.read_text())
    ]
    assert not second, "use slmray.train.config.CONFIG_KEYS:\n" + "\n".join(second)


def test_the_key_list_check_finds_lists_in_each_form_it_knows():
    # the forms the lists this replaced had: names, a dict's keys read in a row, a tuple's fields
    found = key_lists(
        'A = ("model", "attention", "strategy", "compile", "per_device_batch", "num_gpus", "seq_len", "grad_accum")\n'
        'def key(row):\n    return (row["model"], row["per_device_batch"], row["num_gpus"], row["attention"], row["seq_len"], '
        'row["strategy"], row["compile"])\n'
        'def fields(r):\n    return [r.model, r.gpu_type, r.strategy, r.attention, r.precision, r.compile, r.seq_len]\n'
        'HEADER = ("model", "attention", "compile", "per_device_batch", "seq_len", "status", "tokens_per_s")\n'
        'FEW = ("model", "attention", "compile", "per_device_batch")\n'
    )
    assert [line for line, _ in found] == [1, 3, 5]


def test_every_field_of_the_trainers_result_is_a_column_or_deliberately_not_stored():
    from slmray.train.loop import TrainResult

    fields = {f.name for f in dataclasses.fields(TrainResult)}
    missing = sorted(fields - set(COLUMNS) - set(NOT_STORED))
    assert not missing, f"TrainResult fields no results column stores (add a schema column, or to NOT_STORED): {missing}"
    assert set(NOT_STORED) <= fields, "NOT_STORED names a field TrainResult no longer has"
    assert not set(NOT_STORED) & set(COLUMNS), "NOT_STORED names a stored column"


def test_a_result_field_not_stored_stays_out_of_the_row_and_the_rest_are_kept():
    from slmray.train.loop import TrainResult

    result = TrainResult(status="ok", num_gpus=1, num_nodes=1, device_name="cpu", gpu_type="cpu", n_params=10,
                         flops_per_token=60.0, tokens_per_step=128, tokens_per_s=1000.0, first_measured_at=105.0)
    row = make_row(result.to_dict(), started=100.0, ended=110.0)
    assert not set(NOT_STORED) & set(row)
    assert row["tokens_per_s"] == 1000.0 and row["n_params"] == 10
    assert row["time_to_first_step_s"] == 5.0  # first_measured_at is stored as this


def test_a_row_of_an_older_table_becomes_the_trainconfig_it_ran():
    row = {"model": "llama-100m", "attention": "sdpa", "strategy": "ddp", "per_device_batch": 16, "seq_len": 1024,
           "precision": None, "activation_checkpointing": float("nan"), "compile": None, "grad_accum": None,
           "num_gpus": 1, "status": "ok"}
    cfg = TrainConfig.from_row(row, PRESETS["llama-100m"])
    assert (cfg.precision, cfg.activation_checkpointing, cfg.compile, cfg.grad_accum) == tuple(
        ROW_DEFAULTS[k] for k in ("precision", "activation_checkpointing", "compile", "grad_accum"))
    assert not is_fp8(cfg.precision) and is_fp8("fp8") and is_fp8("fp8-rowwise")
    assert config_label(row) == "llama-100m local x1 ddp sdpa b16"


def test_a_trial_and_a_space_have_a_field_for_each_configuration_key():
    # a key added to CONFIG_KEYS is swept: a Trial carries it to Tune's config, a space lists its values
    from slmray.sweep.space import SearchSpace, Trial

    assert {f.name for f in dataclasses.fields(Trial)} == set(CONFIG_KEYS)
    assert set(CONFIG_KEYS) <= {f.name for f in dataclasses.fields(SearchSpace)}
    assert set(CONFIG_KEYS) <= set(COLUMNS)


@pytest.mark.parametrize("precision", ["bf16", "fp8"])
def test_the_trial_carries_the_trainconfig_its_space_resolved(precision):
    from slmray.catalog.prices import PriceBook
    from slmray.sweep.capacity import Capacity
    from slmray.sweep.plan import plan_trial
    from slmray.sweep.space import SearchSpace

    space = SearchSpace(model=["llama-100m"], per_device_batch=[8], num_gpus=[2], gpu_type=["H100-80GB"],
                        attention=["sdpa"], strategy=["ddp"], precision=precision, compile=[True], steps=7, repeats=2)
    capacity = Capacity(use_gpu=True, gpus={"H100-80GB": 8}, gpus_per_node={"H100-80GB": 8})
    resolved = space.resolve(space.trials()[0].as_config(), capacity.device)
    planned = plan_trial(resolved, capacity, PriceBook.load("aws"), prune=True)
    assert planned.train is resolved.train and planned.train.precision == precision
    assert (planned.train.device, planned.train.steps, planned.train.repeats, resolved.num_gpus) == ("cuda", 7, 2, 2)
    assert resolved.steps_run == space.warmup_steps + 7 * 2
    # the row's configuration columns: the same values whichever part of the trial gives them
    row = make_row(planned.row_columns(), planned.train.flat())
    assert {k: row[k] for k in CONFIG_KEYS} == {**resolved.trial.as_config(), "gpu_type": "H100-80GB"}
