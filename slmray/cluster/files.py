"""Cluster files (`cluster/*.yaml`), checked offline before `ray up`.

Ray's checks come first: its autoscaler schema on the file as written (so an error names the
field the user wrote), then `prepare_config` (merge the provider's defaults) and
`validate_config`, the pair `ray up` runs before it touches the cloud.  Then slmray's, which
Ray cannot know:

- a GPU worker type's `GPU` and `CPU` are its instance type's (`instances.csv`), and it has
  exactly one `accelerator_type:X: 1`, X the GPU's Ray name (`gpus.csv`): the autoscaler plans
  with these numbers, and trials ask for X, so a wrong one launches nodes no trial can use;
- resources are whole numbers (Ray's draft-07 schema lets `8.0` through), min <= max workers;
- the head has `slmray_head`, which trial drivers ask a sliver of, so they stay off GPU nodes;
- AWS nodes set `ImageId` (Ray's default AMI is years old) and an instance role: results reach
  S3 through it, and no AWS key may appear anywhere in the file;
- a node type's `InstanceMarketOptions` (spot) is what EC2's RunInstances accepts, checked against
  botocore's EC2 model: Ray hands `node_config` to EC2 unread, so a typo would fail only at launch;
- setup commands are spelled out (Ray's default installs a nightly Ray) and pin Ray and slmray.

Every failure is a `ClusterError`, one line: `<file>: <field>: <what is wrong>`.

    python -m slmray.cluster validate                 # every cluster/*.yaml
    python -m slmray.cluster validate cluster/h100.yaml
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import logging
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import yaml

from slmray import __version__, private_apis
from slmray.catalog.gpus import gpu_specs, spec_for
from slmray.catalog.instances import InstanceType, instance
from slmray.cli import ArgumentParser, HelpFormatter, exits_2_on_user_error
from slmray.errors import UserError

HEAD_RESOURCE = "slmray_head"
"""Custom resource of the head node type; each trial driver requests a fraction of it."""
RAY_VERSION = "2.60.0"
"""The Ray the cluster files install; run `ray up` and `ray job submit` with the same."""

_FAKE_PROVIDERS = ("fake_multinode",)
_PROVIDERS = ("aws", *_FAKE_PROVIDERS)
_ACCEL = "accelerator_type:"
_SECRET_NAME = re.compile(r"aws_(secret_access_key|access_key_id|session_token)", re.IGNORECASE)
_ACCESS_KEY_ID = re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")
_RAY_PIN = re.compile(r"(?<![\w.-])ray(?:\[[^\]]*\])?==([\w.]+)")
_SLMRAY_PIN = re.compile(  # a wheel file, a version, or a git ref
    r"slmray-([\w.]+?)-py3-none-any\.whl|slmray(?:\[[^\]]*\])?==([\w.]+)|slmray(?:\.git)?@v?([\w.]+)"
)
_VERSION = re.compile(r"\d+\.\d+(\.\d+)?((a|b|rc|\.dev|\.post)\d+)?")
_WHEEL = re.compile(r"/[^\s\"'\[]+\.whl")
_SLMRAY_WHEEL = re.compile(r"slmray-[\w.]+-py3-none-any\.whl")
_PLACEHOLDER = re.compile(r"<[A-Z][A-Z0-9_]*>")
_ROLE = "nodes reach S3 through their instance role (IamInstanceProfile), never through keys in a file"


class ClusterError(UserError):
    """A cluster file that Ray or slmray rejects: `<file>: <field>: <what is wrong>`, one line."""

    def __init__(self, path: str, field: str | None, problem: str):
        self.path, self.field, self.problem = str(path), field, " ".join(str(problem).split())
        super().__init__(": ".join(part for part in (self.path, field, self.problem) if part))


@dataclass(frozen=True)
class NodeType:
    """One entry of `available_node_types`, as the autoscaler will plan with it."""

    name: str
    instance_type: str | None
    """AWS `InstanceType`; None for providers without one (fake_multinode)."""
    gpu: str | None
    """Canonical GPU (`H100-80GB`) from the instance table; None for CPU nodes and fake ones."""
    gpus: int
    cpus: int
    spot: bool
    min_workers: int
    max_workers: int


@dataclass(frozen=True)
class ClusterSpec:
    """A validated cluster file: its node types and what they add up to."""

    path: str
    provider: str
    node_types: tuple[NodeType, ...]
    head_node_type: str
    max_workers: int
    """Worker nodes of all types together, at most."""
    placeholders: tuple[str, ...] = ()
    """Values still to fill in before `ray up`, such as `<ACCOUNT_ID>`."""
    missing_mounts: tuple[str, ...] = ()
    """`file_mounts` sources not on this machine (relative to the working directory, as `ray up`
    reads them), such as the slmray wheel not built yet: `ray up` would fail on them after
    launching the head."""

    def before_ray_up(self) -> str:
        """What is left to do before `ray up`, in one line; empty when nothing is."""
        todo = [f"fill in {', '.join(self.placeholders)}"] if self.placeholders else []
        for source in self.missing_mounts:
            build = f"pip wheel --no-deps -w {Path(source).parent.as_posix()} ."
            if not _SLMRAY_WHEEL.fullmatch(Path(source).name):
                todo.append(f"make {source}, which file_mounts copies")
            elif Path("pyproject.toml").is_file():  # at a checkout's root, where ray up reads the sources
                todo.append(f"build {source} with {build}")
            else:
                todo.append(f"{source} is not here: run ray up from the repository root, after {build} there")
        return "; ".join(todo)

    @property
    def workers(self) -> tuple[NodeType, ...]:
        return tuple(nt for nt in self.node_types if nt.name != self.head_node_type)

    def _most(self, node_types: list[NodeType], per_node: Callable[[NodeType], int]) -> int:
        """The most of a per-node quantity the cluster can hold: biggest nodes first, within max_workers."""
        left, total = self.max_workers, 0
        for nt in sorted(node_types, key=per_node, reverse=True):
            n = min(nt.max_workers, left)
            total, left = total + n * per_node(nt), left - n
        return total

    def gpu_capacity(self) -> dict[str, int]:
        """Canonical GPU -> the most GPUs of it the cluster can have at once (max_workers x GPUs per node)."""
        gpus = dict.fromkeys(nt.gpu for nt in self.workers if nt.gpu and nt.gpus)
        capacity = {g: self._most([nt for nt in self.workers if nt.gpu == g], lambda nt: nt.gpus) for g in gpus}
        return {g: n for g, n in capacity.items() if n}

    def gpus_per_node(self, gpu: str) -> int:
        """GPUs of this type on one node (the largest such node type); 0 if the cluster has none."""
        return max((nt.gpus for nt in self.workers if nt.gpu == gpu), default=0)

    def summary(self) -> str:
        """`head + 2 worker types, up to 32 x H100-80GB; spot: 1 type, off (max_workers 0)`."""
        n = len(self.workers)
        gpus = ", ".join(f"{count} x {gpu}" for gpu, count in self.gpu_capacity().items())
        cpus = self._most(list(self.workers), lambda nt: nt.cpus)
        text = f"head + {n} worker type{'' if n == 1 else 's'}, up to {gpus or f'{cpus} worker CPUs, no GPUs'}"
        spot = [nt for nt in self.workers if nt.spot]
        if spot:
            nodes = min(sum(nt.max_workers for nt in spot), self.max_workers)
            text += f"; spot: {len(spot)} type{'' if len(spot) == 1 else 's'}, " + (
                f"up to {nodes} node{'' if nodes == 1 else 's'}" if nodes else "off (max_workers 0)"
            )
        return text


def load_cluster(path: str) -> ClusterSpec:
    """Parse a cluster YAML, run Ray's validation and slmray's checks; ClusterError on the first problem."""
    path = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ClusterError(path, None, f"cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ClusterError(path, None, f"not UTF-8 text (byte {exc.start}): a cluster file is YAML") from None
    raw = _parse(path, text)
    _check_secrets(path, raw, text)
    cfg = _ray_validated(path, raw)
    provider, head = cfg["provider"]["type"], cfg["head_node_type"]
    node_types = tuple(
        _node_type(path, provider, name, nt, is_head=name == head) for name, nt in cfg["available_node_types"].items()
    )
    if provider == "aws":
        _check_setup(path, raw, head)
    placeholders = dict.fromkeys(p for _, s in _strings(raw) for p in _PLACEHOLDER.findall(s))
    return ClusterSpec(path, provider, node_types, head, cfg["max_workers"], tuple(placeholders), _missing_here(raw))


def validate_all(directory: str = "cluster") -> list[ClusterSpec]:
    """Every `*.yaml` in a directory, loaded and checked; the first bad file raises."""
    return [load_cluster(str(p)) for p in _cluster_files(directory)]


def cluster_gpu_types(directory: str = "cluster") -> set[str]:
    """Canonical GPU types that some cluster file in the directory can run."""
    return {gpu for spec in validate_all(directory) for gpu in spec.gpu_capacity()}


def _cluster_files(directory: str) -> list[Path]:
    d = Path(directory)
    files = sorted(p for p in d.iterdir() if p.suffix in (".yaml", ".yml")) if d.is_dir() else []
    if not files:
        raise ClusterError(directory, None, "no cluster files (*.yaml) here")
    return files


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last, silently)."""


def _mapping_once(loader: _StrictLoader, node: yaml.MappingNode) -> dict:
    seen = set()
    for key, _ in node.value:
        if isinstance(key, yaml.ScalarNode) and key.tag != "tag:yaml.org,2002:merge":
            if key.value in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key.value!r} given twice", key.start_mark)
            seen.add(key.value)
    return loader.construct_mapping(node)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_once)


def _parse(path: str, text: str) -> dict:
    try:
        raw = yaml.load(text, Loader=_StrictLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else None
        raise ClusterError(path, where, f"not valid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise ClusterError(path, None, f"not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        problem = "is empty" if raw is None else f"must be a mapping of keys, not {type(raw).__name__}"
        raise ClusterError(path, "(top level)", problem)
    return raw


def _dotted(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else f".{p}" if out else str(p)
    return out


def _strings(obj: Any, parts: tuple = ()) -> Iterator[tuple[str, str]]:
    """(field path, text) for every key and string value."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield _dotted((*parts, k)), str(k)
            yield from _strings(v, (*parts, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _strings(v, (*parts, i))
    elif isinstance(obj, str):
        yield _dotted(parts), obj


def _check_secrets(path: str, raw: dict, text: str) -> None:
    for field, s in _strings(raw):
        if _SECRET_NAME.search(s) or _ACCESS_KEY_ID.search(s):
            raise ClusterError(path, field, f"holds an AWS credential: {_ROLE}")
    for lineno, line in enumerate(text.splitlines(), 1):  # comments too
        if _SECRET_NAME.search(line) or _ACCESS_KEY_ID.search(line):
            raise ClusterError(path, f"line {lineno}", f"holds an AWS credential: {_ROLE}")
    mounts = raw.get("file_mounts")
    for remote, local in mounts.items() if isinstance(mounts, dict) else ():
        if ".aws" in Path(str(local)).parts:
            raise ClusterError(path, f"file_mounts.{remote}", f"copies AWS credentials to the nodes: {_ROLE}")


@functools.cache
def _ray_schema() -> dict:
    import ray.autoscaler

    return json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())


def _ray_validated(path: str, raw: dict) -> dict:
    """The config as Ray's cluster launcher sees it, after Ray's own checks."""
    import jsonschema
    ray_util = private_apis.ray_cluster_launcher()

    try:
        jsonschema.validate(raw, _ray_schema())  # on the file as written: errors name the user's fields
    except jsonschema.ValidationError as exc:
        raise ClusterError(path, *_schema_error(exc)) from None
    provider = raw["provider"]["type"]
    if provider not in _PROVIDERS:
        raise ClusterError(path, "provider.type", f"{provider!r}: slmray checks {', '.join(_PROVIDERS)} files")
    quiet = logging.getLogger(ray_util.__name__)  # it logs each max_workers default it fills in
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        if provider in _FAKE_PROVIDERS:
            # Ray's wheel ships no defaults for it (fake_multi_node/example.yaml is missing), and its
            # autoscaler validates the file as written: so the file must be complete, and is checked as is.
            cfg = copy.deepcopy(raw)
            ray_util.fill_node_type_min_max_workers(cfg)
        else:
            cfg = ray_util.prepare_config(copy.deepcopy(raw))
        _check_min_workers(path, cfg)
        ray_util.validate_config(cfg)
        return cfg
    except ClusterError:
        raise
    except jsonschema.ValidationError as exc:
        raise ClusterError(path, *_schema_error(exc)) from None
    except (ValueError, RuntimeError, KeyError, TypeError, AssertionError, NotImplementedError) as exc:
        named = re.search(r"`(\w+)`|'(\w+)'", str(exc))
        field = next(g for g in named.groups() if g) if named else "config"
        raise ClusterError(path, field, f"Ray rejects it: {type(exc).__name__}: {exc}") from None
    finally:
        quiet.setLevel(level)


def _check_min_workers(path: str, cfg: dict) -> None:
    """The node types' `min_workers` fit in the global `max_workers`.  Ray checks this too, but its
    error names neither the node types nor the numbers."""
    mins = {name: nt.get("min_workers", 0) for name, nt in cfg["available_node_types"].items() if nt.get("min_workers")}
    if sum(mins.values()) > cfg["max_workers"]:
        terms = " + ".join(f"{name} {n}" for name, n in mins.items())
        raise ClusterError(path, "max_workers", f"{cfg['max_workers']} is less than the node types' min_workers together "
                           f"({terms} = {sum(mins.values())}): raise it or lower a min_workers")


def _schema_error(exc) -> tuple[str, str]:
    parts = list(exc.absolute_path)
    if exc.validator == "additionalProperties" and isinstance(exc.instance, dict):
        allowed = exc.schema.get("properties", {})
        extra = next(k for k in exc.instance if k not in allowed)
        close = difflib.get_close_matches(str(extra), list(allowed), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        return _dotted([*parts, extra]), f"not a key Ray's cluster schema allows here{hint}"
    if exc.validator == "required" and isinstance(exc.instance, dict):
        parts.append(next(k for k in exc.validator_value if k not in exc.instance))
    return _dotted(parts) or "(top level)", f"{exc.message} (Ray's cluster schema)"


def _node_type(path: str, provider: str, name: str, nt: dict, is_head: bool) -> NodeType:
    where = f"available_node_types.{name}"
    res, conf = nt["resources"], nt["node_config"]
    for key, value in res.items():
        if type(value) is not int:  # bool too
            problem = f"{value!r} is not a whole number: Ray plans with integers"
            raise ClusterError(path, f"{where}.resources.{key}", problem)
    itype = conf.get("InstanceType") if provider == "aws" else None
    row = instance(provider, itype) if itype else None
    if row is None and res.get("GPU") and provider == "aws":
        problem = f"{itype} is not in slmray/catalog/instances.csv, so its GPUs cannot be checked: add its row"
        raise ClusterError(path, f"{where}.node_config.InstanceType", problem)
    _check_gpus(path, where, res, row)
    if is_head and res.get(HEAD_RESOURCE, 0) < 1:
        problem = f'needs "{HEAD_RESOURCE}": 1, a fraction of which each trial driver asks for, to stay off GPU nodes'
        raise ClusterError(path, f"{where}.resources", problem)
    lo, hi = nt.get("min_workers", 0), nt.get("max_workers", 0)
    if lo > hi:
        raise ClusterError(path, f"{where}.min_workers", f"{lo} is more than max_workers ({hi})")
    if provider == "aws":
        if str(conf.get("ImageId", "")).lower() in ("", "latest_dlami"):
            problem = "set your region's Deep Learning AMI (see cluster/README.md): Ray's default AMI is years old"
            raise ClusterError(path, f"{where}.node_config.ImageId", problem)
        if "IamInstanceProfile" not in conf:
            raise ClusterError(path, f"{where}.node_config.IamInstanceProfile", f"missing: {_ROLE}")
    market = _market(path, f"{where}.node_config.InstanceMarketOptions", conf) if provider == "aws" else None
    return NodeType(
        name=name, instance_type=itype, gpu=row.gpu if row else None, gpus=res.get("GPU", 0),
        cpus=res.get("CPU", row.vcpus if row else 0), spot=market == "spot", min_workers=lo, max_workers=hi,
    )


@functools.cache
def _ec2_model():
    import botocore.session  # boto3's; its EC2 model is the RunInstances API that Ray's AWS provider calls

    return botocore.session.get_session().get_service_model("ec2")


def _market(path: str, field: str, conf: dict) -> str | None:
    """The node type's EC2 MarketType (`spot`), None for on-demand; ClusterError if EC2 would refuse it."""
    if "InstanceMarketOptions" not in conf:
        return None
    from botocore.validate import ParamValidator

    options, model = conf["InstanceMarketOptions"], _ec2_model()
    report = ParamValidator().validate(options, model.shape_for("InstanceMarketOptionsRequest"))
    if report.has_errors():
        first = report.generate_report().splitlines()[0]
        raise ClusterError(path, field, f"EC2 would refuse it ({first}); for spot write {{MarketType: spot}}")
    markets = model.shape_for("MarketType").enum
    kind = options.get("MarketType")
    if kind not in markets:
        problem = "missing" if kind is None else f"{kind!r} is not an EC2 market type"
        raise ClusterError(path, f"{field}.MarketType", f"{problem}: one of {', '.join(markets)} (spot for spot)")
    return kind


def _check_gpus(path: str, where: str, res: dict, row: InstanceType | None) -> None:
    """GPU, CPU and accelerator_type of a node type, against its instance type when the table has it."""
    gpus = res.get("GPU", 0)
    accels = [k for k in res if k.startswith(_ACCEL)]
    if row is not None:
        table = f"{row.instance_type} has {row.gpus} x {row.gpu}, {row.vcpus} vCPUs (slmray/catalog/instances.csv)"
        if gpus != row.gpus:
            got = gpus if "GPU" in res else "none"
            raise ClusterError(path, f"{where}.resources.GPU", f"must be {row.gpus}: {table}, got {got}")
        if res.get("CPU", row.vcpus) != row.vcpus:
            raise ClusterError(path, f"{where}.resources.CPU", f"must be {row.vcpus}: {table}, got {res['CPU']}")
    if not gpus:
        if accels:
            raise ClusterError(path, f"{where}.resources.{accels[0]}", "a node type without GPUs has none")
        return
    known = sorted({spec.ray_accelerator_type for spec in gpu_specs()})
    want = _ACCEL + spec_for(row.gpu).ray_accelerator_type if row else None
    if len(accels) != 1 or (want and accels[0] != want):
        need = f'"{want}": 1, the Ray name of {row.gpu}' if want else f"one {_ACCEL}X: 1, X one of {', '.join(known)}"
        why = "trials request it, and the autoscaler adds only nodes that declare it"
        raise ClusterError(path, f"{where}.resources", f"needs {need} ({why}); found {', '.join(accels) or 'none'}")
    accel = accels[0]
    if accel.removeprefix(_ACCEL) not in known:
        raise ClusterError(path, f"{where}.resources.{accel}", f"not in slmray/catalog/gpus.csv, which has {', '.join(known)}")
    if res[accel] != 1:
        raise ClusterError(path, f"{where}.resources.{accel}", f"must be 1, as Ray sets it; got {res[accel]}")


def _check_setup(path: str, raw: dict, head: str) -> None:
    """Setup commands spelled out, pinning Ray and slmray on every node type; wheels they install are mounted."""
    for key in ("setup_commands", "head_setup_commands", "worker_setup_commands"):
        if key not in raw:
            raise ClusterError(path, key, "missing: Ray's default installs a nightly Ray; set it ([] for nothing)")
    per_node = {head: [("setup_commands", raw["setup_commands"]), ("head_setup_commands", raw["head_setup_commands"])]}
    for name, nt in raw["available_node_types"].items():
        if name != head:  # a node type's own worker_setup_commands replace both global lists
            own = f"available_node_types.{name}.worker_setup_commands"
            shared = [(key, raw[key]) for key in ("setup_commands", "worker_setup_commands")]
            per_node[name] = [(own, nt["worker_setup_commands"])] if "worker_setup_commands" in nt else shared
    for name, lists in per_node.items():
        commands = [(f"{key}[{i}]", cmd) for key, cmds in lists for i, cmd in enumerate(cmds)]
        for field, cmd in commands:
            for wheel in _WHEEL.findall(cmd):
                if _mounted_from(raw, wheel) is None:
                    raise ClusterError(path, field, f"installs {wheel}, which file_mounts does not copy to the nodes")
        _check_pin(path, lists[0][0], name, commands, "ray", _RAY_PIN, RAY_VERSION, "slmray.cluster.files.RAY_VERSION")
        _check_pin(path, lists[0][0], name, commands, "slmray", _SLMRAY_PIN, __version__, "this checkout's version")


def _mounted_from(raw: dict, remote: str) -> str | None:
    """The local path `file_mounts` copies to a node's `remote` path (itself or inside a mounted
    folder); None if none does."""
    for target, source in (raw.get("file_mounts") or {}).items():
        folder = target.rstrip("/")
        if remote == target:
            return str(source)
        if remote.startswith(folder + "/"):
            return str(Path(str(source)) / remote[len(folder) + 1:])
    return None


def _missing_here(raw: dict) -> tuple[str, ...]:
    """`file_mounts` sources, and wheels the setup commands install from them, not on this machine
    (a folder left out where a wheel in it is named)."""
    wheels = [_mounted_from(raw, w) for key in ("setup_commands", "head_setup_commands", "worker_setup_commands")
              for cmd in raw.get(key) or [] for w in _WHEEL.findall(cmd)]
    wheels += [_mounted_from(raw, w) for nt in raw["available_node_types"].values()
               for cmd in nt.get("worker_setup_commands") or [] for w in _WHEEL.findall(cmd)]
    sources = [str(s) for s in (raw.get("file_mounts") or {}).values()] + [w for w in wheels if w]
    missing = [s for s in dict.fromkeys(sources) if not Path(s).expanduser().exists()]
    return tuple(s for s in missing if not any(m.startswith(s.rstrip("/") + "/") for m in missing))


def _check_pin(
    path: str, field: str, node: str, commands: list[tuple[str, str]], package: str, pattern: re.Pattern,
    version: str, whose: str,
) -> None:
    """Some command pins the package; every pin that names a version names this one."""
    pins = [(f, next(g for g in m.groups() if g)) for f, cmd in commands for m in pattern.finditer(cmd)]
    if not pins:
        raise ClusterError(path, field, f"no command installs a pinned {package} ({version}) on node type {node}")
    for f, pinned in pins:
        if pinned != version and (package == "ray" or _VERSION.fullmatch(pinned)):
            raise ClusterError(path, f, f"installs {package} {pinned}, but {whose} is {version}")


@exits_2_on_user_error
def main(argv: list[str] | None = None) -> int:
    parser = ArgumentParser(prog="python -m slmray.cluster", description=__doc__.split("\n\n")[0],
                            formatter_class=HelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser(
        "validate", help="check cluster files offline: Ray's validation, then slmray's", formatter_class=HelpFormatter,
        description="Check cluster files offline, as ray up would and then slmray's own checks; prints ok or one "
                    "error line per file, and exits 2 if any failed.",
    )
    validate.add_argument("files", nargs="*", help="cluster YAML files (default: every *.yaml in cluster/)")
    args = parser.parse_args(argv)
    files = args.files or [str(p) for p in _cluster_files("cluster")]
    failed = False
    for f in files:
        try:
            spec = load_cluster(f)
        except ClusterError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
            continue
        todo = spec.before_ray_up()
        print(f"ok {spec.path}: {spec.summary()}{f' (before ray up: {todo})' if todo else ''}")
    return 2 if failed else 0

