"""What the collectives of a data-parallel step cost, and how much of it compute hides.

Each collective is a ring over the world's GPUs timed by an alpha-beta model, the one NCCL's own
tuner uses (`ncclTopoTuneModel`, src/graph/tuning.cc): a base latency, a latency per ring step
(NVLink or PCIe within a node, the network across nodes), plus the bytes each GPU sends over the
slowest link's achieved bandwidth.  A ring all-reduce takes 2(n-1) steps and moves 2(n-1)/n of
the buffer per GPU; an all-gather or a reduce-scatter half of both.

The overlap model (`ddp_step`, `fsdp_step`) says what runs beside what:
- DDP all-reduces fp32 gradients in buckets (25 MB, torch's `bucket_cap_mb` default) on a
  communication stream while backward goes on; a bucket leaves when its gradients are ready, so
  backward hides all but the last one (the embedding's gradient, ready when backward ends).
- FSDP (per-block `fully_shard`) all-gathers each block's bf16 parameters one block ahead of its
  forward (and, resharded after forward, again one block ahead of its backward) and
  reduce-scatters each block's fp32 gradients after its backward, overlapping the next block's
  backward; a block's collectives are hidden up to that block's compute, the first gather and
  the last reduce-scatter not at all, and every collective pays its latency, per block.
- Compute that runs beside a collective is slowed (`CONTENTION`): NCCL's kernels take SMs and
  HBM bandwidth from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BASE_LATENCY_S = 8.4e-6
"""NCCL's base latency of a ring collective, Simple protocol (the one large buffers use):
`baseLat` in NVIDIA/nccl src/graph/tuning.cc (commit 01afd20a)."""
STEP_LATENCY_S = {"nvlink": 3.4e-6, "pcie": 5.7e-6, "efa": 9.6e-6, "ethernet": 30e-6}
"""Latency per ring step, Simple protocol: `hwLat` of the same file for NVLink, PCI and the
network (9.6 us; RDMA: EFA, InfiniBand, RoCE; later releases raise it to 14 us).  ethernet (NCCL's TCP socket transport, through the
host's kernel) has no figure there: a stated prior, about three times the RDMA one."""
LINK_SHARE = {"nvlink": 0.8, "pcie": 0.8, "efa": 0.8, "ethernet": 0.6}
"""Share of a link's one-direction bandwidth a ring collective achieves (NCCL's bus bandwidth).
Stated priors: nccl-tests reach about 80% of NVLink's and of an RDMA NIC's line rate on large
buffers; TCP sockets less (copies through the host), 60% assumed.  Not fitted: no committed
multi-GPU row."""
SOCKET_CAP_GB_S = 5.0
"""Bus bandwidth NCCL's socket transport (plain Ethernet, through the host's TCP stack) reaches at
most across nodes, whatever the NICs: a stated prior from published runs, 1.1-5.2 GB/s on a
100 Gb/s TCP network (NVIDIA/nccl issue 450) and no more than 60% of a 32 Gb/s one (issue 209)."""
CONTENTION = 0.1
"""Prior: compute that overlaps a collective runs this much slower (NCCL runs a thread block per
channel on the SMs and reads and writes HBM beside the GEMMs).  Not measured here; 10% of the
overlapped time."""
DDP_BUCKET_BYTES = 25 * 2**20
"""torch.nn.parallel.DistributedDataParallel's bucket_cap_mb default (25 MiB)."""


@dataclass(frozen=True)
class Network:
    """The links a ring over `num_gpus` GPUs crosses: one kind within a node, one across nodes."""

    num_gpus: int
    gpus_per_node: int
    intra: str
    """nvlink or pcie."""
    intra_gb_s: float
    """Per-GPU one-direction bandwidth within a node (GB/s)."""
    inter: str = "efa"
    """efa or ethernet; unused within one node."""
    inter_gb_s: float = 0.0
    """A node's network bandwidth, all its NICs (GB/s); unused within one node.  Not a GPU's share of
    it: NCCL runs a ring per channel and spreads the channels over the node's NICs, and each ring
    leaves a node over one edge, so what a node sends across equals what each GPU sends in all,
    over every NIC at once.  Published nccl-tests runs agree: nodes of 8 A100 with 4 x 200 Gb/s
    InfiniBand reach 85-96 GB/s all-reduce bus bandwidth across nodes, against 100 GB/s of NICs
    and 12.5 GB/s a GPU's share (NVIDIA/nccl-tests issues 100, 119 and 175)."""

    @property
    def nodes(self) -> int:
        return math.ceil(self.num_gpus / self.gpus_per_node)

    def _ring_s(self, nbytes: float, passes: int) -> float:
        n = self.num_gpus
        if n == 1:
            return 0.0
        steps, inter_steps = passes * (n - 1), passes * (self.nodes - 1)
        latency = BASE_LATENCY_S + (steps - inter_steps) * STEP_LATENCY_S[self.intra]
        latency += inter_steps * STEP_LATENCY_S[self.inter]
        if self.nodes > 1:  # the slower of a GPU's link in its node and its node's network
            across = self.inter_gb_s * LINK_SHARE[self.inter]
            if self.inter == "ethernet":
                across = min(across, SOCKET_CAP_GB_S)
            bandwidth = min(self.intra_gb_s * LINK_SHARE[self.intra], across)
        else:
            bandwidth = self.intra_gb_s * LINK_SHARE[self.intra]
        return latency + passes * (n - 1) / n * nbytes / (bandwidth * 1e9)

    def all_reduce_s(self, nbytes: float) -> float:
        """Seconds of a ring all-reduce of an `nbytes` buffer."""
        return self._ring_s(nbytes, 2)

    def all_gather_s(self, nbytes: float) -> float:
        """Seconds of a ring all-gather whose gathered output is `nbytes`."""
        return self._ring_s(nbytes, 1)

    def reduce_scatter_s(self, nbytes: float) -> float:
        """Seconds of a ring reduce-scatter of an `nbytes` input."""
        return self._ring_s(nbytes, 1)


@dataclass(frozen=True)
class Exposed:
    """A step's collectives: their total time, the part compute does not hide, and the compute
    slowed beside the hidden part."""

    total_s: float
    exposed_s: float
    contention_s: float

    @property
    def added_s(self) -> float:
        """What the collectives add to the step."""
        return self.exposed_s + self.contention_s


def _overlap(comm_s: float, window_s: float) -> tuple[float, float]:
    """(exposed, hidden) seconds of `comm_s` of collectives run beside `window_s` of compute."""
    hidden = min(comm_s, window_s)
    return comm_s - hidden, hidden


def ddp_step(net: Network, grad_bytes: float, last_bytes: float, backward_s: float) -> Exposed:
    """DDP's gradient all-reduce in the last micro-step: `grad_bytes` of fp32 gradients in buckets,
    `last_bytes` of them (the embedding's) ready only when backward (`backward_s`) ends."""
    last_bytes = min(grad_bytes, max(last_bytes, min(grad_bytes, DDP_BUCKET_BYTES)))
    rest = grad_bytes - last_bytes
    buckets = math.ceil(rest / DDP_BUCKET_BYTES)
    early = buckets * net.all_reduce_s(rest / buckets) if buckets else 0.0
    exposed, hidden = _overlap(early, backward_s)
    last = net.all_reduce_s(last_bytes)
    return Exposed(early + last, exposed + last, CONTENTION * hidden)


def fsdp_step(
    net: Network, *, n_layer: int, block_gather_bytes: float, block_scatter_bytes: float, root_gather_bytes: float,
    root_scatter_bytes: float, forward_s: float, backward_s: float, regather: bool, micro: int,
) -> Exposed:
    """FSDP's collectives over one optimizer step of `micro` micro-batches, block by block.

    forward_s, backward_s: one micro-step's compute (the blocks take all of it, evenly: the
    root's share is small).  regather: blocks resharded after forward are gathered again for
    backward (fsdp; fsdp_grad_op keeps them).  Gradients are reduce-scattered in the last
    micro-step only (the trainer skips the sync before it)."""
    gather = net.all_gather_s(block_gather_bytes)
    scatter = net.reduce_scatter_s(block_scatter_bytes)
    fwd_block, bwd_block = forward_s / n_layer, backward_s / n_layer
    total = exposed = hidden = 0.0

    def run(comm: float, window: float, count: int) -> None:
        nonlocal total, exposed, hidden
        e, h = _overlap(comm, window)
        total, exposed, hidden = total + count * comm, exposed + count * e, hidden + count * h

    for last_micro in [False] * (micro - 1) + [True]:
        # forward: the root and the first block gathered before any compute, each next block
        # while the one before it runs
        run(net.all_gather_s(root_gather_bytes) + gather, 0.0, 1)
        run(gather, fwd_block, n_layer - 1)
        # backward, last block first: its regather waits behind only the head's (small) backward;
        # then while block i computes, block i-1's regather and block i+1's reduce-scatter share
        # the link; the first block's and the root's reduce-scatters leave after backward ends
        run(gather if regather else 0.0, 0.0, 1)
        run((gather if regather else 0.0) + (scatter if last_micro else 0.0), bwd_block, n_layer - 1)
        if last_micro:
            run(scatter + net.reduce_scatter_s(root_scatter_bytes), 0.0, 1)
    return Exposed(total, exposed, CONTENTION * hidden)
