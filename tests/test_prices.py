"""The price catalog: every entry sourced and resolvable, lookups, the choice rule, overrides."""

import datetime
import json
import warnings

import pytest

from slmray.catalog.gpus import gpu_specs
from slmray.catalog.prices import (
    Price,
    PriceBook,
    PriceError,
    PriceWarning,
    catalog,
    parse_price_overrides,
    profiles,
)


def test_every_entry_has_a_source_a_date_and_a_known_gpu():
    known = {s.gpu for s in gpu_specs()}
    for e in catalog():
        assert e.source and e.note, e
        datetime.date.fromisoformat(e.date_read)
        assert e.gpu in known and e.gpus >= 1 and e.usd_per_hour > 0, e
        assert e.pricing in ("on-demand", "spot", "capacity-block", "relative"), e


def test_profiles_cover_the_issue():
    assert {"local", "aws", "aws-spot", "gcp", "lambda", "paper"} <= set(profiles())
    needed = {("aws", "p5.48xlarge"), ("aws", "p4de.24xlarge"), ("aws", "p4d.24xlarge"), ("aws", "g5.xlarge"),
              ("aws", "g6e.xlarge"), ("gcp", "a3-highgpu-8g"), ("gcp", "a2-highgpu-1g"), ("aws", "p5e.48xlarge")}
    assert needed <= {(e.provider, e.instance_type) for e in catalog()}
    # p5e is rented only as a Capacity Block: its own profile, never mixed into on-demand
    h200 = PriceBook.load("aws-capacity-block").lookup("H200")
    assert h200.usd_per_gpu_hour == pytest.approx(39.80 / 8) and "p5e.48xlarge capacity-block" in h200.source
    assert PriceBook.load("aws").lookup("H200").usd_per_gpu_hour == pytest.approx(63.296 / 8)


def test_price_per_gpu_hour_is_derived_from_the_instance():
    p5 = next(e for e in catalog() if e.instance_type == "p5.48xlarge" and e.pricing == "on-demand")
    assert (p5.gpu, p5.gpus) == ("H100-80GB", 8)
    assert p5.usd_per_gpu_hour == pytest.approx(p5.usd_per_hour / 8)
    price = PriceBook.load("aws").lookup("H100-80GB")
    assert price.usd_per_gpu_hour == pytest.approx(6.88)
    assert "p5" in price.source and "us-east-1" in price.source and "read 2026-" in price.source


def test_lookup_accepts_torch_names():
    book = PriceBook.load("aws")
    assert book.lookup("NVIDIA H100 80GB HBM3") == book.lookup("H100-80GB")
    assert book.lookup("NVIDIA A100-SXM4-40GB").gpu == "A100-40GB"
    assert book.lookup("NVIDIA A100-SXM4-80GB").gpu == "A100-80GB"


def test_cheapest_gpu_hour_of_a_provider_wins():
    book = PriceBook.load("lambda")  # 1x H100 SXM 4.29, 8x H100 SXM 3.99 per GPU-hour
    assert book.lookup("H100-80GB").usd_per_gpu_hour == pytest.approx(3.99)
    assert "gpu_8x_h100_sxm5" in book.lookup("H100-80GB").source


def test_paper_profile_is_the_papers_relative_prices():
    book = PriceBook.load("paper")
    got = {g: book.lookup(g).usd_per_gpu_hour for g in ("A100-40GB", "A100-80GB", "H100-80GB")}
    assert got == {"A100-40GB": 1.00, "A100-80GB": 1.46, "H100-80GB": 2.53}


def test_local_machine_costs_nothing_unless_told():
    book = PriceBook.load()
    assert book.lookup("cpu") == Price("cpu", 0.0, "local machine (price 0)")
    assert book.lookup("NVIDIA H100 80GB HBM3").usd_per_gpu_hour == 0.0
    assert PriceBook.load(overrides={"CPU": 0.25}).lookup("cpu").usd_per_gpu_hour == 0.25


def test_unmatched_gpu_warns_once_and_gives_no_price():
    book = PriceBook.load("aws")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert book.lookup("Some Future GPU") is None
        assert book.lookup("Some Future GPU") is None
        assert book.lookup("cpu") is None
    messages = [str(w.message) for w in caught if issubclass(w.category, PriceWarning)]
    assert len(messages) == 2 and "Some Future GPU" in messages[0] and "cost is left empty" in messages[0]


def test_overrides_replace_and_add():
    book = PriceBook.load("aws", overrides={"H100-80GB": 3.10, "NVIDIA B200": 5.0})
    assert book.lookup("NVIDIA H100 80GB HBM3") == Price("H100-80GB", 3.10, "override")
    assert book.lookup("NVIDIA B200").usd_per_gpu_hour == 5.0
    assert book.lookup("A100-40GB").usd_per_gpu_hour == pytest.approx(21.957642 / 8)


def test_parse_price_overrides():
    assert parse_price_overrides(["H100-80GB=3.1", "cpu=0", "H100-80GB=2.9"]) == {"H100-80GB": 2.9, "cpu": 0.0}
    for bad, message in [("H100-80GB", "expected GPU=USD"), ("=3", "expected GPU=USD"), ("L4=cheap", "non-negative"),
                         ("L4=-1", "non-negative"), ("L4=nan", "non-negative")]:
        with pytest.raises(PriceError, match=message) as err:
            parse_price_overrides([bad])
        assert repr(bad) in str(err.value)


def test_price_files_csv_and_json(tmp_path):
    csv_file = tmp_path / "mine.csv"
    csv_file.write_text("gpu,usd_per_gpu_hour,source\nNVIDIA H100 80GB HBM3,2.2,our contract\nL4,0.5,\n")
    book = PriceBook.load("gcp", file=str(csv_file), overrides={"L4": 0.4})
    assert book.lookup("H100-80GB") == Price("H100-80GB", 2.2, "our contract")
    assert book.lookup("L4").usd_per_gpu_hour == 0.4  # the command line beats the file
    assert book.lookup("A100-40GB").usd_per_gpu_hour == pytest.approx(3.673385)  # the profile fills the rest
    as_dict, as_rows = tmp_path / "d.json", tmp_path / "r.json"
    as_dict.write_text(json.dumps({"A10G": 0.9}))
    as_rows.write_text(json.dumps([{"gpu": "A10G", "usd_per_gpu_hour": 0.8, "source": "quote"}]))
    assert PriceBook.load("paper", file=str(as_dict)).lookup("A10G").usd_per_gpu_hour == 0.9
    assert PriceBook.load("paper", file=str(as_rows)).lookup("A10G") == Price("A10G", 0.8, "quote")


@pytest.mark.parametrize(
    "name, text, message",
    [
        ("p.csv", "gpu,price\nL4,1\n", "usd_per_gpu_hour: no such column"),
        ("p.csv", "gpu,usd_per_gpu_hour,region\nL4,1,x\n", "region: not a known column"),
        ("p.csv", "gpu,usd_per_gpu_hour\nL4\n", "expected 2 columns, got 1"),
        ("p.csv", "gpu,usd_per_gpu_hour\nL4,free\n", "row 1: usd_per_gpu_hour"),
        ("p.csv", "gpu,usd_per_gpu_hour\n,1\n", "row 1: gpu: missing"),
        ("p.json", "{not json", "not valid JSON"),
        ("p.json", "[1, 2]", "expected an object"),
        ("p.yaml", "L4: 1", "must end in .csv or .json"),
    ],
)
def test_bad_price_files_name_the_file(tmp_path, name, text, message):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(PriceError, match=message) as err:
        PriceBook.load("aws", file=str(path))
    assert str(path) in str(err.value)


def test_bad_profile_and_missing_file():
    with pytest.raises(PriceError, match="profile 'azure' is not one of local, aws"):
        PriceBook.load("azure")
    with pytest.raises(PriceError, match="price file /nonexistent/prices.csv: cannot be read"):
        PriceBook.load("aws", file="/nonexistent/prices.csv")
    with pytest.raises(PriceError, match="price override 'L4'"):
        PriceBook.load("aws", overrides={"L4": -2})


def test_a_price_file_names_each_gpu_once_with_a_number(tmp_path):
    twice = tmp_path / "twice.csv"
    twice.write_text("gpu,usd_per_gpu_hour\nH100-80GB,2.0\nNVIDIA H100 80GB HBM3,3.0\n")
    with pytest.raises(PriceError, match=r"row 2: gpu 'NVIDIA H100 80GB HBM3' is H100-80GB, priced already in row 1"):
        PriceBook.load("aws", file=str(twice))
    flag = tmp_path / "flag.json"
    flag.write_text(json.dumps({"H100-80GB": True}))  # float(True) is 1.0: a dollar nobody asked for
    with pytest.raises(PriceError, match="usd_per_gpu_hour: must be a non-negative number of USD per GPU-hour, got True"):
        PriceBook.load("aws", file=str(flag))


def test_a_gpu_the_catalog_does_not_know_is_priced_but_not_silently(tmp_path):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"MI300X": 2.0}))
    with pytest.warns(PriceWarning, match=r"row 1: gpu: 'MI300X' is not a GPU of the catalog"):
        book = PriceBook.load("aws", file=str(other))
    assert book.lookup("MI300X").usd_per_gpu_hour == 2.0
    with pytest.warns(PriceWarning, match=r"--price 'B200=5': 'B200' is not a GPU of the catalog"):
        assert parse_price_overrides(["B200=5"]) == {"B200": 5.0}


def test_a_name_that_reads_as_a_catalog_gpu_must_be_one_of_its_names(tmp_path):
    """The patterns that read torch's device names would take `H100-90GB` for the H100-80GB and `A100`
    for the A100-40GB; a typed name is a catalog name (any case), `cpu`, torch's name, or refused."""
    from slmray.catalog.gpus import GPUNameError, named_gpu

    assert named_gpu(" h100-80gb ") == "H100-80GB" and named_gpu("CPU") == "cpu"
    assert named_gpu("NVIDIA H100 80GB HBM3") == "H100-80GB" and named_gpu("NVIDIA A100-SXM4-80GB") == "A100-80GB"
    assert named_gpu("NVIDIA B200") is None  # outside the catalog: priced by that name, with a warning
    for typo, meant in [("H100-90GB", "H100-80GB"), ("A100", "A100-40GB"), ("h200-sxm", "H200")]:
        with pytest.raises(GPUNameError, match=rf"^'{typo}' is not a catalog name \(did you mean {meant}\?\)"):
            named_gpu(typo)
    with pytest.raises(PriceError, match=r"^--price 'H100-90GB=3': 'H100-90GB' is not a catalog name"):
        parse_price_overrides(["H100-90GB=3"])
    typo = tmp_path / "typo.csv"
    typo.write_text("gpu,usd_per_gpu_hour\nH100-80GB,2\nA100,1\n")
    with pytest.raises(PriceError, match=rf"^price file {typo}, row 2: gpu: 'A100' is not a catalog name"):
        PriceBook.load("aws", file=str(typo))


def test_an_override_replaces_only_the_gpu_it_names():
    """`overridden`: the named GPU is priced per GPU from then on; every other keeps its price and
    the instances it is rented as."""
    from slmray.catalog.rent import rent

    aws = PriceBook.load("aws")
    book = aws.overridden(overrides={"H100-80GB": 3.0})
    assert book.profile == "aws" and book.lookup("H100-80GB") == Price("H100-80GB", 3.0, "override")
    assert book.offers("H100-80GB") == () and rent(book, "H100-80GB", 2).usd_per_hour == 6.0
    assert book.lookup("H200") == aws.lookup("H200") and book.offers("H200") == aws.offers("H200") != ()
    assert aws.lookup("H100-80GB").usd_per_gpu_hour != 3.0  # the book it came from is unchanged
