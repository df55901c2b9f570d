"""The one results-row builder (`slmray.core.row`): what each column means, whoever builds the row."""

import math
import warnings

import pytest

from slmray.catalog.prices import PriceBook, PriceWarning
from slmray.core.row import make_row
from slmray.core.schema import COLUMNS
from slmray.results.table import to_table

BOOK = PriceBook.load("local", overrides={"H100-80GB": 2.0, "H200": 3.0})
PLANNED = {"model": "tiny", "num_gpus": 2, "requested_gpu_type": None, "gpu_type": "H100-80GB", "predicted_oom": False}


def test_a_trial_that_ran_records_the_gpu_it_ran_on_and_is_priced_by_it():
    """The plan said H100 (the space asked for any GPU); the workers detected an H200."""
    ran = {"gpu_type": "H200", "num_gpus": 2, "tokens_per_s": 7200.0, "first_measured_at": 105.0, "tokens_per_step": 64}
    row = make_row(PLANNED, ran, {"status": "ok", "error": ""}, started=100.0, ended=136.0, prices=BOOK)
    assert (row["gpu_type"], row["requested_gpu_type"]) == ("H200", None)
    assert row["price_per_hour_usd"] == 6.0 and row["price_source"] == "override"
    assert row["wall_s"] == 36.0 and row["cost_usd"] == pytest.approx(6.0 * 36 / 3600)
    assert row["tokens_per_usd"] == pytest.approx(7200 * 3600 / 6.0)
    assert row["time_to_first_step_s"] == 5.0
    assert "tokens_per_step" not in row and "first_measured_at" not in row  # not columns: left out
    assert to_table([row]).num_rows == 1


def test_a_trial_that_did_not_run_records_the_planned_gpu_and_costs_its_wall_time():
    row = make_row(PLANNED, None, {"status": "pruned", "error": "predicted 90 GiB"}, started=10.0, ended=10.5, prices=BOOK)
    assert row["gpu_type"] == "H100-80GB" and row["price_per_hour_usd"] == 4.0
    assert row["cost_usd"] == pytest.approx(4.0 * 0.5 / 3600) and "tokens_per_usd" not in row


def test_an_unknown_gpu_type_or_price_leaves_the_costs_empty():
    anywhere = {**PLANNED, "gpu_type": None}
    assert "price_per_hour_usd" not in make_row(anywhere, {"status": "failed"}, started=0.0, ended=1.0, prices=BOOK)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        row = make_row({**PLANNED, "gpu_type": "H200"}, {"status": "ok"}, started=0.0, ended=1.0,
                       prices=PriceBook.load("paper"))
    assert "cost_usd" not in row and any(issubclass(w.category, PriceWarning) for w in caught)


def test_later_parts_win_and_only_schema_columns_are_kept():
    row = make_row({"model": "a", "seq_len": None, "device": "cpu"}, {"seq_len": 64, "status": "ok"})
    assert row == {"model": "a", "seq_len": 64, "status": "ok"}
    assert set(row) <= set(COLUMNS) and not math.isnan(row["seq_len"])
