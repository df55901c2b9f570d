"""What a GPU-hour costs: the price catalog `prices.csv`, profiles over it, and user overrides.

Each catalog row prices one cloud instance by the hour (`usd_per_hour`) and names its source
and the date it was read; the instance's GPU and GPU count come from `instances.csv`, so the
price per GPU-hour is derived, never typed in.  A row without an instance type prices a single
GPU (`gpu`), which is how the seed paper's relative prices are kept.

Profiles
    local             the machine you are on: every GPU and the CPU cost 0, unless overridden.
    aws, gcp, lambda  that provider's on-demand prices.
    aws-spot, gcp-spot  one reading of its spot prices (spot prices move; the row says when).
    aws-capacity-block  EC2 Capacity Blocks for ML, reserved and paid up front: the only way
                      to rent a p5e (8x H200) from AWS, which gives it no On-Demand rate.
    paper             Ashkboos et al. 2024, Appendix A: price per GPU relative to the A100-40GB
                      (A100-40GB 1.00, A100-80GB 1.46, H100-80GB 2.53), to reproduce its
                      Token/Dollar figures.  Its "dollars" are A100-40GB-hours, not dollars.

Instances: under a provider's profile a GPU type is sold as whole instances (`PriceBook.offers`),
and an option of N GPUs is priced at the instances that hold it, idle GPUs included, by the one
rule in `slmray.catalog.rent`.  `lookup` gives one GPU-hour's price: the lowest per GPU-hour
among the instances (what `--per-gpu-pricing` charges, for those who share nodes).  The catalog
keeps one region per provider (AWS us-east-1, GCP us-central1; Lambda charges the same everywhere).
`local`, `paper`, a price file and `--price` overrides price one GPU and have no instances: a GPU
priced so is charged per GPU.

Overrides: `file` (CSV with columns gpu, usd_per_gpu_hour and optionally source; or JSON, either
{"H100-80GB": 3.1} or a list of such rows) and then `overrides` ({"H100-80GB": 3.1}) replace or
add per-GPU prices, the later winning.  GPU names may be canonical or as torch reports them.

A GPU the book has no price for is never guessed: `lookup` warns once per name and returns None.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from dataclasses import dataclass
from importlib import resources

from slmray.catalog.gpus import CPU, GPUNameError, canonical_gpu, gpu_specs, named_gpu
from slmray.catalog.instances import instance
from slmray.catalog.tables import CsvError, read_rows
from slmray.errors import UserError

LOCAL = "local"
ON_DEMAND = "on-demand"
RELATIVE = "relative"
PRICE_FILE_COLUMNS = ("gpu", "usd_per_gpu_hour", "source")
CATALOG_COLUMNS = {
    "provider": str, "instance_type": str, "gpu": str, "pricing": str, "usd_per_hour": float, "region": str,
    "source": str, "date_read": str, "note": str,
}
"""prices.csv's columns and their types."""


def unit_note(profile: str) -> str:
    """What '$' means at a profile's prices, where it is not dollars (the paper's); empty otherwise."""
    if profile != "paper":
        return ""
    return "The paper profile's prices are relative (A100-40GB GPU-hour = 1), so '$' reads 'A100-40GB-hours'."


class PriceError(UserError):
    """A price profile, file or override that cannot be used; the message names it."""


class PriceWarning(UserWarning):
    """A trial's GPU has no price in the chosen profile; its cost is left empty."""


@dataclass(frozen=True)
class Price:
    gpu: str
    """Canonical GPU name (or `cpu`)."""
    usd_per_gpu_hour: float
    source: str
    """Short provenance: `aws p5.48xlarge on-demand us-east-1 (URL, read 2026-07-27)`."""


@dataclass(frozen=True)
class CatalogEntry:
    """One row of prices.csv, with the GPU and count of its instance resolved."""

    provider: str
    instance_type: str
    """Empty for a row that prices one GPU (the paper's relative prices)."""
    gpu: str
    gpus: int
    pricing: str
    """on-demand, spot, or relative (the paper)."""
    usd_per_hour: float
    """The whole instance."""
    region: str
    source: str
    date_read: str
    note: str

    @property
    def profile(self) -> str:
        return self.provider if self.pricing in (ON_DEMAND, RELATIVE) else f"{self.provider}-{self.pricing}"

    @property
    def usd_per_gpu_hour(self) -> float:
        return self.usd_per_hour / self.gpus

    def price(self) -> Price:
        what = " ".join(p for p in (self.provider, self.instance_type or self.gpu, self.pricing, self.region) if p)
        return Price(self.gpu, self.usd_per_gpu_hour, f"{what} ({self.source}, read {self.date_read})")


@functools.cache
def catalog() -> tuple[CatalogEntry, ...]:
    """Rows of prices.csv; a row naming an instance missing from instances.csv is an error."""
    entries = []
    for line, row in enumerate(read_rows(resources.files("slmray.catalog") / "prices.csv", CATALOG_COLUMNS), start=2):
        if row["instance_type"]:
            it = instance(row["provider"], row["instance_type"])
            if it is None:
                raise PriceError(f"prices.csv line {line}: {row['provider']} {row['instance_type']} is not in instances.csv")
            gpu, gpus = it.gpu, it.gpus
        else:
            gpu, gpus = row["gpu"], 1
        entries.append(
            CatalogEntry(
                provider=row["provider"], instance_type=row["instance_type"], gpu=gpu, gpus=gpus, pricing=row["pricing"],
                usd_per_hour=row["usd_per_hour"], region=row["region"], source=row["source"],
                date_read=row["date_read"], note=row["note"],
            )
        )
    return tuple(entries)


def profiles() -> tuple[str, ...]:
    return (LOCAL, *sorted({e.profile for e in catalog()}))


def gpu_key(name: str) -> str:
    """The name prices are keyed by: canonical GPU name, or `cpu`."""
    name = name.strip()
    return CPU if name.lower() == CPU else canonical_gpu(name)


def _usd(value: object, what: str) -> float:
    if isinstance(value, bool):  # JSON true would read as $1.00
        raise PriceError(f"{what}: must be a non-negative number of USD per GPU-hour, got {value!r}")
    try:
        usd = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        usd = math.nan
    if not (math.isfinite(usd) and usd >= 0):
        raise PriceError(f"{what}: must be a non-negative number of USD per GPU-hour, got {value!r}")
    return usd


def _profile_prices(profile: str) -> dict[str, Price]:
    cheapest: dict[str, CatalogEntry] = {}
    for e in catalog():
        if e.profile == profile and (e.gpu not in cheapest or e.usd_per_gpu_hour < cheapest[e.gpu].usd_per_gpu_hour):
            cheapest[e.gpu] = e
    return {gpu: e.price() for gpu, e in cheapest.items()}


def _profile_offers(profile: str) -> dict[str, tuple[CatalogEntry, ...]]:
    """GPU -> the profile's whole-instance entries holding it (none for the paper's per-GPU rows)."""
    offers: dict[str, list[CatalogEntry]] = {}
    for e in catalog():
        if e.profile == profile and e.instance_type:
            offers.setdefault(e.gpu, []).append(e)
    return {gpu: tuple(entries) for gpu, entries in offers.items()}


def _read_price_file(uri: str) -> dict[str, Price]:
    from slmray.results.storage import StorageError, filesystem  # pyarrow.fs (and S3), for a price file only

    try:
        fs, path = filesystem(uri)
        with fs.open_input_stream(path) as f:
            raw = f.read()
    except (StorageError, OSError) as exc:
        raise PriceError(f"price file {uri}: cannot be read ({exc})") from None
    if uri.endswith(".json"):
        try:
            data = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError, or bytes that are not UTF-8
            raise PriceError(f"price file {uri}: not valid JSON ({exc})") from None
        rows = [{"gpu": k, "usd_per_gpu_hour": v} for k, v in data.items()] if isinstance(data, dict) else data
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise PriceError(f"price file {uri}: expected an object {{gpu: usd}} or a list of rows")
    elif uri.endswith(".csv"):
        try:  # the cells as text: _usd below says what is wrong with a price, in a price's words
            rows = read_rows(raw, dict.fromkeys(PRICE_FILE_COLUMNS, str), optional=("source",), name=uri)
        except CsvError as exc:
            raise PriceError(f"price file {exc}") from None
    else:
        raise PriceError(f"price file {uri}: must end in .csv or .json")
    prices, rows_of = {}, {}
    for i, row in enumerate(rows, start=1):
        gpu = str(row.get("gpu") or "").strip()
        if not gpu:
            raise PriceError(f"price file {uri}, row {i}: gpu: missing")
        key = _known_key(gpu, f"price file {uri}, row {i}: gpu")
        if key in rows_of:
            raise PriceError(f"price file {uri}, row {i}: gpu {gpu!r} is {key}, priced already in row {rows_of[key]}")
        rows_of[key] = i
        usd = _usd(row.get("usd_per_gpu_hour"), f"price file {uri}, row {i}: usd_per_gpu_hour")
        prices[key] = Price(key, usd, str(row.get("source") or f"price file {uri}"))
    return prices


def _known_key(name: str, what: str) -> str:
    """The key a GPU name a user typed prices (`gpus.named_gpu`): a name that reads as a catalog GPU
    without being one of its names (`H100-90GB`) is a PriceError; a GPU outside the catalog, named
    as torch names it, is a price the user means, with a `PriceWarning` (a typo prices nothing)."""
    try:
        key = named_gpu(name)
    except GPUNameError as exc:
        raise PriceError(f"{what}: {exc}") from None
    if key is None:
        known = ", ".join(s.gpu for s in gpu_specs())
        warnings.warn(f"{what}: {name!r} is not a GPU of the catalog ({known}, cpu): it prices only trials "
                      "whose GPU torch names exactly so", PriceWarning, stacklevel=3)
        return gpu_key(name)
    return key


def parse_price_overrides(items: list[str]) -> dict[str, float]:
    """`["H100-80GB=3.1", "cpu=0.2"]` (a repeated command-line flag) -> {"H100-80GB": 3.1, "cpu": 0.2}."""
    overrides = {}
    for item in items:
        gpu, sep, usd = item.rpartition("=")
        if not sep or not gpu.strip():
            raise PriceError(f"--price {item!r}: expected GPU=USD per GPU-hour, e.g. H100-80GB=3.10")
        overrides[_known_key(gpu, f"--price {item!r}")] = _usd(usd, f"--price {item!r}")
    return overrides


class PriceBook:
    """Prices of one profile: per GPU-hour (`lookup`) and, under a provider's profile, the whole
    instances each GPU type is sold as (`offers`); the user's file and overrides applied."""

    def __init__(self, profile: str, prices: dict[str, Price],
                 offers: dict[str, tuple[CatalogEntry, ...]] | None = None, per_gpu: bool = False,
                 given: frozenset[str] = frozenset()):
        self.profile = profile
        self._prices = dict(prices)
        self._offers = dict(offers or {})
        self.per_gpu = per_gpu
        """--per-gpu-pricing: charge the GPUs used at `lookup`'s price, never a whole instance."""
        self.given = given
        """The GPUs (canonical) a price file or override priced over the profile's."""
        self._warned: set[str] = set()

    @classmethod
    def load(cls, profile: str = LOCAL, file: str | None = None, overrides: dict[str, float] | None = None,
             per_gpu: bool = False) -> PriceBook:
        if profile not in profiles():
            raise PriceError(f"prices: profile {profile!r} is not one of {', '.join(profiles())}")
        prices = {} if profile == LOCAL else _profile_prices(profile)
        offers = {} if profile == LOCAL else _profile_offers(profile)
        return cls(profile, prices, offers, per_gpu).overridden(file, overrides)

    def overridden(self, file: str | None = None, overrides: dict[str, float] | None = None,
                   per_gpu: bool | None = None) -> PriceBook:
        """This book with a price file's and then `overrides`' per-GPU prices over its own (every
        other GPU keeps its price and its instances), per GPU where `per_gpu` (None: as it was)."""
        given = _read_price_file(file) if file else {}
        for gpu, usd in (overrides or {}).items():
            key = gpu_key(gpu)
            given[key] = Price(key, _usd(usd, f"price override {gpu!r}"), "override")
        # a price the user gave is per GPU: it replaces the instances the GPU was sold as
        offers = {gpu: entries for gpu, entries in self._offers.items() if gpu not in given}
        return PriceBook(self.profile, {**self._prices, **given}, offers, self.per_gpu if per_gpu is None else per_gpu,
                         self.given | frozenset(given))

    @property
    def prices(self) -> tuple[Price, ...]:
        """The explicit prices (under `local`, everything else costs 0)."""
        return tuple(sorted(self._prices.values(), key=lambda p: p.gpu))

    def offers(self, gpu_type: str) -> tuple[CatalogEntry, ...]:
        """The whole instances `gpu_type` is sold as under this profile (with --per-gpu-pricing
        too: they say which link its GPUs have); none where it is priced per GPU (the `local` and
        `paper` profiles, a price file, a --price override) or not sold."""
        return self._offers.get(gpu_key(gpu_type), ())

    def lookup(self, gpu_type: str) -> Price | None:
        """The price of one GPU-hour of `gpu_type` (canonical, or as torch names it), or None."""
        key = gpu_key(gpu_type)
        if key in self._prices:
            return self._prices[key]
        if self.profile == LOCAL:
            return Price(key, 0.0, "local machine (price 0)")
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(
                f"prices: no {self.profile} price for GPU {gpu_type!r}; its cost is left empty "
                f"(give one with --price {key}=USD or a --price-file)",
                PriceWarning, stacklevel=2,
            )
        return None
