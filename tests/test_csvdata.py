"""The one CSV reader (pyarrow's): typed columns, one-line errors naming file and field."""

from dataclasses import dataclass

import pytest

from slmray.catalog.gpus import GPUSpec, gpu_specs
from slmray.catalog.instances import instance_types
from slmray.catalog.tables import CsvError, read_records, read_rows


@dataclass(frozen=True)
class Row:
    name: str
    count: int
    peak: float | None
    note: str


def _write(tmp_path, text):
    path = tmp_path / "table.csv"
    path.write_text(text)
    return path


def test_columns_take_the_field_types_and_an_empty_optional_cell_is_none(tmp_path):
    path = _write(tmp_path, 'note,name,count,peak\n"a, quoted",x,3,1.5\n,y,4,\n')
    assert read_records(path, Row) == (Row("x", 3, 1.5, "a, quoted"), Row("y", 4, None, ""))


def test_the_package_tables_read_typed():
    assert all(isinstance(s, GPUSpec) and isinstance(s.memory_gb, float) for s in gpu_specs())
    assert any(s.peak_fp8_tflops is None for s in gpu_specs())  # A100: no FP8 tensor cores
    assert all(isinstance(i.gpus, int) and i.gpus >= 1 for i in instance_types())


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,count,peak,note\nx,three,1.0,\n", "table.csv: count: row 1: 'three' is not an integer"),
        ("name,count,peak,note\nx,3,1.0,\ny,4,fast,\n", "table.csv: peak: row 2: 'fast' is not a number"),
        ("name,count,peak,note\nx,,1.0,\n", "table.csv: count: row 1: empty, needs an integer"),
        ("name,peak,note\nx,1.0,\n", "table.csv: count: no such column (the header has name, peak, note)"),
        ("name,count,peak,note,extra\nx,3,1.0,,\n", "table.csv: extra: not a known column (name, count, peak, note)"),
        ("name,count,peak,note\nx,3\n", "table.csv: row 1: expected 4 columns, got 2: x,3"),
        ("name,count,peak,note\nx,3,1.0,,9\n", "table.csv: row 1: expected 4 columns, got 5: x,3,1.0,,9"),
        ("", "table.csv: empty CSV file"),
    ],
)
def test_bad_input_is_one_line_naming_the_file_and_field(tmp_path, text, message):
    with pytest.raises(CsvError) as err:
        read_records(_write(tmp_path, text), Row)
    assert str(err.value) == message


def test_an_optional_column_may_be_missing_and_bytes_are_read_under_the_name_given():
    rows = read_rows(b"gpu,usd\nH100,3\n", {"gpu": str, "usd": str, "source": str}, optional=("source",), name="p.csv")
    assert rows == [{"gpu": "H100", "usd": "3", "source": ""}]
    with pytest.raises(CsvError, match="^p.csv: usd: no such column"):
        read_rows(b"gpu\nH100\n", {"gpu": str, "usd": str}, name="p.csv")
