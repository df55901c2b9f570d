"""GPU profiles: microbenchmarks of one GPU type, measured by `python -m slmray.predict.profile`, one
CSV per type in `profiles/<gpu_type>.csv` (the type as `gpus.canonical_gpu` names it).

The estimator reads a profile, where one exists, for what the datasheet cannot say: the time of a
GEMM of a given shape (waves of tiles, a small K), of fused attention, the HBM bandwidth copies
reach, the fixed cost of a kernel on the device and the host's cost per eager op.  A file starts
with `# key: value` lines (date, driver, torch, device) and then one row per measurement:

    benchmark,variant,m,n,k,seconds

| benchmark     | variant                    | m, n, k                                   | seconds (median)                       |
| ------------- | -------------------------- | ----------------------------------------- | -------------------------------------- |
| gemm          | bf16, fp8 (torch._scaled_mm) | C(m, n) = A(m, k) B(k, n), m the tokens (forward, input gradient) | device time of one product |
| gemm_wgrad    | bf16, fp8                  | the same, k the tokens (weight gradient)  | device time of one product             |
| attention     | sdpa, sdpa-flash, sdpa-cudnn | batch x heads, sequence, head dim       | device time, causal forward + backward |
| copy          | -                          | bytes copied, 0, 0                        | device time of one copy                |
| kernel        | -                          | kernels timed back to back, 0, 0          | device time per tiny kernel            |
| host_op       | family-attention (llama-sdpa) | ops one block dispatches forward + backward, kernels among them, 0 | host time per op, eager autograd + autocast |
| compiled_call | -                          | 0, 0, 0                                   | host time of one compiled region called forward and backward |
| compiled_block | family-attention (llama-sdpa) | 0, 0, 0                                | host time of one compiled block of the family's reference preset, forward and backward |

Nothing here imports torch: the planner reads profiles on machines without a GPU.
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Iterable, Mapping

from slmray.catalog.tables import CsvError, read_rows

COLUMNS = {"benchmark": str, "variant": str, "m": int, "n": int, "k": int, "seconds": float}
BENCHMARKS = ("gemm", "gemm_wgrad", "attention", "copy", "kernel", "host_op", "compiled_call", "compiled_block")
HEADER_KEYS = ("gpu_type", "device", "date", "driver", "torch", "cuda", "sms")
"""`# key: value` lines every profile starts with (`sms`: the device's multiprocessors)."""
PROFILES_DIR = "profiles"


@dataclass(frozen=True)
class Measurement:
    benchmark: str
    variant: str
    m: int
    n: int
    k: int
    seconds: float


def _interpolate(points: list[tuple[int, float]], x: float) -> float:
    """Seconds at size `x` from (size, seconds) points sorted by size: linear in log-log between two
    measured sizes; beyond the largest, proportional to size (the rate has saturated); below the
    smallest, the smallest's time (a kernel does not get faster than its fixed cost)."""
    sizes = [p[0] for p in points]
    if x >= sizes[-1]:
        return points[-1][1] * x / sizes[-1]
    if x <= sizes[0]:
        return points[0][1]
    i = bisect.bisect_left(sizes, x)
    (x0, y0), (x1, y1) = points[i - 1], points[i]
    if x == x1:
        return y1
    w = math.log(x / x0) / math.log(x1 / x0)
    return math.exp((1 - w) * math.log(y0) + w * math.log(y1))


@dataclass(frozen=True)
class GPUProfile:
    """The measurements of one GPU type, and lookups that interpolate between them."""

    gpu_type: str
    header: Mapping[str, str]
    rows: tuple[Measurement, ...]
    _by_nk: dict = field(default_factory=dict, repr=False, compare=False)
    _by_mn: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        for r in self.rows:
            if r.benchmark == "gemm":
                self._by_nk.setdefault((r.variant, r.n, r.k), []).append((r.m, r.seconds))
            elif r.benchmark == "gemm_wgrad":
                self._by_mn.setdefault((r.variant, r.m, r.n), []).append((r.k, r.seconds))
        for table in (self._by_nk, self._by_mn):
            for points in table.values():
                points.sort()

    def _scalar(self, benchmark: str) -> float | None:
        values = [r.seconds for r in self.rows if r.benchmark == benchmark]
        return sorted(values)[len(values) // 2] if values else None

    def gemm_seconds(self, m: int, n: int, k: int, variant: str = "bf16", weight_gradient: bool = False) -> float | None:
        """Device seconds of C(m, n) = A(m, k) B(k, n), interpolated over the tokens (m forward and
        for the input gradient; k for the `weight_gradient`); None if this (n, k), or (m, n) of a
        weight gradient, was not measured."""
        if weight_gradient:
            points = self._by_mn.get((variant, m, n))
            return _interpolate(points, k) if points else None
        points = self._by_nk.get((variant, n, k))
        return _interpolate(points, m) if points else None

    def attention_seconds(self, batch_heads: int, seq_len: int, head_dim: int, variant: str = "sdpa") -> float | None:
        """Device seconds of causal fused attention forward and backward; None if this (variant,
        sequence, head dim) was not measured."""
        points = sorted((r.m, r.seconds) for r in self.rows
                        if r.benchmark == "attention" and r.variant == variant and r.n == seq_len and r.k == head_dim)
        return _interpolate(points, batch_heads) if points else None

    @property
    def copy_bytes_per_s(self) -> float | None:
        """Bytes read plus written per second by the largest copy measured."""
        copies = [r for r in self.rows if r.benchmark == "copy"]
        if not copies:
            return None
        big = max(copies, key=lambda r: r.m)
        return 2 * big.m / big.seconds

    @property
    def kernel_s(self) -> float | None:
        """Device seconds a tiny kernel takes back to back: the fixed cost every kernel pays."""
        return self._scalar("kernel")

    @property
    def host_op_s(self) -> float | None:
        """Host seconds per op dispatched by eager PyTorch with autograd and autocast (median over
        the block layouts measured)."""
        return self._scalar("host_op")

    def block_ops(self, family: str, attention: str) -> tuple[int, int] | None:
        """(ops, kernels) one block of `family` with `attention` dispatched forward and backward on
        this GPU, as counted while the profile ran; None if not measured."""
        for r in self.rows:
            if r.benchmark == "host_op" and r.variant == f"{family}-{attention}":
                return r.m, r.n
        return None

    @property
    def compiled_call_s(self) -> float | None:
        """Host seconds of one compiled region called forward and backward."""
        return self._scalar("compiled_call")

    @property
    def compiled_block_s(self) -> float | None:
        """Host seconds of one compiled decoder block called forward and backward (its Triton
        launches and extern GEMM calls from Inductor's wrapper, the autograd function around it;
        the llama-sdpa block, the one variant measured); None for a profile made before this row
        was (those have `compiled_call` only)."""
        return self._scalar("compiled_block")


def format_profile(header: Mapping[str, Any], rows: Iterable[Measurement]) -> str:
    """The CSV text of a profile: `# key: value` lines, then the rows (seconds to 4 significant digits)."""
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise ValueError(f"profile header: missing {', '.join(missing)}")
    lines = [f"# {k}: {str(v).strip()}" for k, v in header.items()]
    lines.append(",".join(COLUMNS))
    lines += [f"{r.benchmark},{r.variant},{r.m},{r.n},{r.k},{r.seconds:.4g}" for r in rows]
    return "\n".join(lines) + "\n"


def parse_profile(data: bytes, name: str) -> GPUProfile:
    """A profile from its CSV bytes; a malformed one is a CsvError naming `name` and the field."""
    text = data.decode()
    header: dict[str, str] = {}
    body = []
    for line in text.splitlines():
        if line.startswith("#"):
            key, sep, value = line[1:].partition(":")
            if not sep:
                raise CsvError(f"{name}: header line {line!r} is not '# key: value'")
            header[key.strip()] = value.strip()
        elif line.strip():
            body.append(line)
    missing = [k for k in HEADER_KEYS if k not in header]
    if missing:
        raise CsvError(f"{name}: header: missing {', '.join(missing)} (a profile starts with '# key: value' lines)")
    rows = read_rows(("\n".join(body) + "\n").encode(), COLUMNS, name=name)
    out = []
    for i, r in enumerate(rows, 1):
        if r["benchmark"] not in BENCHMARKS:
            raise CsvError(f"{name}: benchmark: row {i}: {r['benchmark']!r} is not one of {', '.join(BENCHMARKS)}")
        if not (math.isfinite(r["seconds"]) and r["seconds"] > 0):
            raise CsvError(f"{name}: seconds: row {i}: {r['seconds']!r} is not a positive number")
        out.append(Measurement(**r))
    return GPUProfile(header["gpu_type"], header, tuple(out))


def read_profile(path: Path | str) -> GPUProfile:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise CsvError(f"{path.name}: {exc.strerror or exc}") from None
    return parse_profile(data, path.name)


def profile_path(gpu_type: str) -> Any:
    """Where the catalog ships the profile of `gpu_type` (a canonical name such as `H100-80GB`)."""
    return resources.files("slmray.catalog") / PROFILES_DIR / f"{gpu_type}.csv"


@functools.cache
def profile_for(gpu_type: str) -> GPUProfile | None:
    """The shipped profile of a GPU type, or None where none was measured."""
    path = profile_path(gpu_type)
    if not path.is_file():
        return None
    return parse_profile(path.read_bytes(), f"{PROFILES_DIR}/{gpu_type}.csv")
