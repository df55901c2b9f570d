"""What N GPUs of a type cost to rent: the one pricing rule of an option (the sweep's plan and
rows, the analysis, the planner).

A provider sells a GPU type as whole instances (`instances.csv`, `PriceBook.offers`): AWS sells
the H100 as p5.4xlarge (1 GPU, 100 Gbps) or p5.48xlarge (8 GPUs, NVLink, 3200 Gbps EFA), and the
H200 on demand only as p5en.48xlarge (8 GPUs).  N GPUs are rented as `ceil(N / g)` instances of
one type with g GPUs each, every GPU of them billed, idle or not.  Several instances are joined
by their network, so the option's speed must be predicted with `gpus_per_node`,
`inter_node_gbps` and `fabric` of that layout (`Rental.link`, as `slmray.predict.estimate.estimate`
takes them), not with NVLink.

The choice among the layouts (`layouts`):
  with a speed  (`speed(gpus_per_node, inter_node_gbps, fabric) -> tokens/s`): the lowest dollars per
                token, so "p5.48xlarge, 8 GPUs, 4 idle" and "4 x p5.4xlarge" are weighed by
                cost and by the link each leaves the run;
  without one   (a measured row, which ran on the GPUs of as few nodes as could hold it): the
                fewest instances, then the cheapest; the layout a measurement or the estimate's
                default assumes.
  Several instances whose network is not published (Lambda, GCP's A2) cannot be predicted: they
  are taken only where no other layout exists.  One instance type per option; mixes (one
  p5.48xlarge and four p5.4xlarge for 12 GPUs) are not considered.

Use (the sweep's plan, the planner):

    speed = lambda gpus_per_node, gbps, fabric: estimate(
        cfg, gpu, n, gpus_per_node=gpus_per_node, inter_node_gbps=gbps, fabric=fabric).tokens_per_s
    rental = rent(book, gpu, n, speed)          # None: no price
    gpus_per_node, gbps, fabric = rental.link
    est = estimate(cfg, gpu, n, gpus_per_node=gpus_per_node, inter_node_gbps=gbps, fabric=fabric)
    usd = rental.usd_per_hour * hours           # rental.description names what is billed

`layouts(book, gpu, n)` lists every way to rent it, to show the alternatives.

A sweep on a cluster that is up (its nodes given: a cluster YAML, a Ray cluster, this machine)
packs its trials onto the nodes side by side, so a trial is charged the GPUs it uses at the rate
of the node's instance (`cluster_share`), never a whole node each: the budget would otherwise
count one node eight times.  Its link is the cluster's.

Per-GPU pricing: GPUs priced one by one (the `local` and `paper` profiles, a price file, a
`--price` override) or `--per-gpu-pricing` (for those who share nodes) are charged N x the
GPU-hour price (`PriceBook.lookup`), with no idle GPUs; their layout is the largest instance
that holds the GPU type (as few nodes as possible).
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass
from typing import Callable

from slmray.catalog.gpus import CPU
from slmray.catalog.instances import instance, instance_types
from slmray.catalog.prices import CatalogEntry, PriceBook, gpu_key

Speed = Callable[[int, "float | None", "str | None"], "float | None"]
"""`speed(gpus_per_node, inter_node_gbps, fabric)`: predicted tokens/s of the option on that layout
(None: unknown)."""


@dataclass(frozen=True)
class Rental:
    """N GPUs of one type as rented: what is billed and the link the run then has."""

    instances: int
    """Instances rented; 0 where the GPUs are priced one by one (no instance)."""
    instance_type: str
    """`p5.48xlarge`; "" where priced per GPU."""
    gpus_billed: int
    idle_gpus: int
    """Billed GPUs the option does not use."""
    usd_per_hour: float
    """All of it, idle GPUs included."""
    gpus_per_node: int
    """The option's GPUs on each instance: what `estimate(gpus_per_node=)` takes."""
    inter_node_gbps: float | None
    """The network joining the instances (None: one instance, or a network not published)."""
    fabric: str | None
    """That network's kind, `efa` or `ethernet` (instances.csv; None where `inter_node_gbps` is)."""
    description: str
    """`p5.48xlarge, 8 GPUs, 4 idle`, `4 x p5.4xlarge joined by 100 Gbps`, `4 GPUs at 6.88 per GPU-hour`."""
    source: str
    """Where the price comes from (catalog row, file, override)."""

    @property
    def per_gpu(self) -> bool:
        return self.instances == 0

    @property
    def link(self) -> tuple[int, float | None, str | None]:
        """(gpus_per_node, inter_node_gbps, fabric): what `estimate` takes of the layout."""
        return self.gpus_per_node, self.inter_node_gbps, self.fabric


def _s(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _gbps(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _instance_rental(entry: CatalogEntry, num_gpus: int) -> Rental:
    size = entry.gpus
    count = -(-num_gpus // size)
    it = instance(entry.provider, entry.instance_type)
    network = _gbps(it.network_gbps)
    billed = count * size
    idle = billed - num_gpus
    if count == 1:
        text = f"{entry.instance_type}, {_s(size, 'GPU')}" + (f", {idle} idle" if idle else "")
    else:
        text = f"{count} x {entry.instance_type}" + (f", {billed} GPUs, {idle} idle" if idle else "")
        text += f", joined by {network:g} Gbps" if network is not None else ", joined by an unpublished network"
    return Rental(
        instances=count, instance_type=entry.instance_type, gpus_billed=billed, idle_gpus=idle,
        usd_per_hour=count * entry.usd_per_hour, gpus_per_node=min(num_gpus, size),
        inter_node_gbps=network if count > 1 else None, fabric=it.fabric if count > 1 and network else None,
        description=text, source=entry.price().source,
    )


def _per_gpu_rental(book: PriceBook, gpu_type: str, num_gpus: int) -> Rental | None:
    price = book.lookup(gpu_type)
    if price is None:
        return None
    key = gpu_key(gpu_type)
    holders = [instance(e.provider, e.instance_type) for e in book.offers(gpu_type)]
    if not holders and key != CPU:
        holders = [it for it in instance_types() if it.gpu == key]
    largest = max(holders, key=lambda it: (it.gpus, _gbps(it.network_gbps) or 0.0), default=None)
    size = largest.gpus if largest else num_gpus
    network = _gbps(largest.network_gbps) if largest and num_gpus > size else None
    return Rental(
        instances=0, instance_type="", gpus_billed=num_gpus, idle_gpus=0,
        usd_per_hour=price.usd_per_gpu_hour * num_gpus, gpus_per_node=min(num_gpus, size),
        inter_node_gbps=network, fabric=largest.fabric if network else None,
        description=f"{_s(num_gpus, 'GPU')} at {price.usd_per_gpu_hour:,.4g} per GPU-hour", source=price.source,
    )


def layouts(book: PriceBook, gpu_type: str, num_gpus: int) -> list[Rental]:
    """Every way `book` rents `num_gpus` x `gpu_type` on its own: one per instance type that holds
    the type, or the one per-GPU price; empty where there is no price (`PriceBook.lookup` warns)."""
    num_gpus = _count(num_gpus)
    offers = () if book.per_gpu else book.offers(gpu_type)
    if offers:
        return [_instance_rental(e, num_gpus) for e in offers]
    rental = _per_gpu_rental(book, gpu_type, num_gpus)
    return [] if rental is None else [rental]


def _count(num_gpus: int) -> int:
    if isinstance(num_gpus, bool) or not isinstance(num_gpus, numbers.Integral) or num_gpus < 1:
        raise ValueError(f"num_gpus: must be a positive integer, got {num_gpus!r}")
    return int(num_gpus)  # a table's numpy integer too


def cluster_share(book: PriceBook, gpu_type: str, num_gpus: int, node_gpus: int) -> Rental | None:
    """`num_gpus` GPUs on the nodes of a cluster that is up (`node_gpus` each), which the sweep's
    trials share: charged the GPUs used at the per-GPU rate of the instance of that size (the
    cheapest where several), its link the cluster's; where no instance has that size (a
    workstation of 2 GPUs), the GPU-hour price (`PriceBook.lookup`)."""
    num_gpus = _count(num_gpus)
    offers = [e for e in (() if book.per_gpu else book.offers(gpu_type)) if e.gpus == node_gpus]
    if not offers:
        rental = _per_gpu_rental(book, gpu_type, num_gpus)
        return None if rental is None else dataclasses.replace(rental, gpus_per_node=min(num_gpus, node_gpus))
    e = min(offers, key=lambda o: o.usd_per_gpu_hour)
    whole = _instance_rental(e, num_gpus)
    nodes = f"{whole.instances} x {e.instance_type}" if whole.instances > 1 else f"a {e.instance_type}"
    text = f"{_s(num_gpus, 'GPU')} of {nodes} (a cluster's, shared)"
    if whole.instances > 1:
        text += whole.description[whole.description.index(", joined by"):]
    return dataclasses.replace(whole, gpus_billed=num_gpus, idle_gpus=0, usd_per_hour=num_gpus * e.usd_per_gpu_hour,
                               description=text)


def rent(book: PriceBook, gpu_type: str | None, num_gpus: int, speed: Speed | None = None,
         node_gpus: int | None = None) -> Rental | None:
    """How `num_gpus` GPUs of `gpu_type` are rented under `book`, and what that costs an hour.

    `speed(gpus_per_node, inter_node_gbps, fabric)`: the option's predicted tokens/s on a layout;
    with it the layout of the lowest dollars per token wins, without it the fewest instances (the
    module docstring).  Predict the option's speed again with the chosen `gpus_per_node`,
    `inter_node_gbps` and `fabric`.  `node_gpus`: the GPUs per node of a cluster that is up and shared by a
    sweep's trials (`cluster_share`); None: the option rents its own instances.  None where
    `gpu_type` is None (any GPU of a cluster) or has no price.
    """
    if not gpu_type:
        return None
    if node_gpus is not None:
        return cluster_share(book, gpu_type, num_gpus, node_gpus)
    options = layouts(book, gpu_type, num_gpus)
    predictable = [r for r in options if r.instances <= 1 or r.inter_node_gbps is not None]
    options = predictable or options
    if not options:
        return None
    fewest = min(options, key=lambda r: (r.instances, r.usd_per_hour))
    if speed is None or len(options) == 1:
        return fewest
    speeds: dict[tuple, float | None] = {}
    for r in options:
        if r.link not in speeds:
            speeds[r.link] = speed(*r.link)
    scored = [(r.usd_per_hour / s, r.instances, r.usd_per_hour, i, r) for i, r in enumerate(options)
              if (s := speeds[r.link]) is not None and s > 0 and math.isfinite(s)]
    return min(scored)[-1] if scored else fewest
