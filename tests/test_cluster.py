"""Cluster files: Ray's own validation and slmray's checks, offline (no cloud, no Ray started)."""

from pathlib import Path

import pytest
import yaml

from slmray.cluster.files import HEAD_RESOURCE, ClusterError, cluster_gpu_types, load_cluster, validate_all
from slmray.cluster.files import main as cluster_main

from tests.conftest import call_main

CLUSTER = Path(__file__).resolve().parent.parent / "cluster"
H100 = (CLUSTER / "h100.yaml").read_text()


def test_every_shipped_cluster_file_validates():
    specs = {Path(s.path).name: s for s in validate_all(str(CLUSTER))}
    assert set(specs) == {"h100.yaml", "h200.yaml", "a100-80.yaml", "a100-40.yaml", "a10g.yaml", "mixed.yaml", "local.yaml"}
    for spec in specs.values():
        head = next(nt for nt in spec.node_types if nt.name == spec.head_node_type)
        assert head.gpus == 0 and head.max_workers == 0
        assert all(nt.min_workers == 0 for nt in spec.workers)
        assert all(nt.max_workers == 0 for nt in spec.workers if nt.spot)  # shipped on demand
    assert specs["local.yaml"].provider == "fake_multinode"
    assert specs["local.yaml"].gpu_capacity() == {}


@pytest.mark.parametrize(
    "name, gpu, instance_type, cpus",
    [
        ("h100.yaml", "H100-80GB", "p5.48xlarge", 192),
        ("a100-80.yaml", "A100-80GB", "p4de.24xlarge", 96),
        ("a100-40.yaml", "A100-40GB", "p4d.24xlarge", 96),
        ("a10g.yaml", "A10G", "g5.48xlarge", 192),
    ],
)
def test_single_gpu_type_files(name, gpu, instance_type, cpus):
    spec = load_cluster(str(CLUSTER / name))
    worker, spot = spec.workers
    assert not worker.spot and spot.spot and spot.name == f"{worker.name}-spot"
    assert (worker.instance_type, worker.gpu, worker.gpus, worker.cpus) == (instance_type, gpu, 8, cpus)
    assert spec.gpu_capacity() == {gpu: 8 * worker.max_workers}
    assert spec.gpus_per_node(gpu) == 8 and spec.gpus_per_node("L4") == 0
    assert spec.placeholders == ("<DLAMI_ID>", "<ACCOUNT_ID>")


def test_mixed_holds_what_the_full_sweep_asks():
    spec = load_cluster(str(CLUSTER / "mixed.yaml"))
    capacity = spec.gpu_capacity()
    for gpu in ("H100-80GB", "A100-80GB", "A100-40GB"):  # search_spaces/full.py: up to 64 GPUs of each
        assert capacity[gpu] == 64 and spec.gpus_per_node(gpu) == 8
    assert set(capacity) == {"H100-80GB", "A100-80GB", "A100-40GB", "A10G", "L40S", "L4"}
    assert cluster_gpu_types(str(CLUSTER)) == set(capacity) | {"H200"}  # h200.yaml adds it


def test_capacity_is_bounded_by_the_global_max_workers(tmp_path):
    text = H100.replace("max_workers: &nodes 4", "max_workers: 1").replace("max_workers: *nodes", "max_workers: 3")
    spec = load_cluster(_write(tmp_path, text))
    assert spec.workers[0].max_workers == 3 and spec.gpu_capacity() == {"H100-80GB": 8}


@pytest.mark.parametrize("name", [p.name for p in sorted(CLUSTER.glob("*.yaml")) if p.name != "local.yaml"])
def test_every_gpu_type_has_a_spot_twin(name):
    spec = load_cluster(str(CLUSTER / name))
    raw = yaml.safe_load((CLUSTER / name).read_text())["available_node_types"]
    on_demand = [nt for nt in spec.workers if not nt.spot]
    assert on_demand and len(spec.workers) == 2 * len(on_demand)
    for nt in on_demand:
        twin = next(s for s in spec.workers if s.name == f"{nt.name}-spot")
        assert twin.spot and raw[twin.name]["node_config"]["InstanceMarketOptions"] == {"MarketType": "spot"}
        assert "InstanceMarketOptions" not in raw[nt.name]["node_config"]
        assert raw[twin.name]["resources"] == raw[nt.name]["resources"]
        same = {k: v for k, v in raw[twin.name]["node_config"].items() if k != "InstanceMarketOptions"}
        assert same == raw[nt.name]["node_config"]
        assert (twin.instance_type, twin.gpu, twin.gpus, twin.cpus) == (nt.instance_type, nt.gpu, nt.gpus, nt.cpus)
        assert twin.max_workers == 0  # shipped on demand: the price profiles and the study assume it


def test_spot_switched_on_changes_the_market_not_the_capacity(tmp_path):
    spot = "  h100-spot:\n    min_workers: 0\n    max_workers: "  # what cluster/README.md says to do for spot
    text = H100.replace("max_workers: *nodes", "max_workers: 0").replace(f"{spot}0", f"{spot}*nodes")
    spec = load_cluster(_write(tmp_path, text))
    assert [(nt.name, nt.spot, nt.max_workers) for nt in spec.workers] == [("h100", False, 0), ("h100-spot", True, 4)]
    assert spec.gpu_capacity() == {"H100-80GB": 32}
    assert spec.summary().endswith("; spot: 1 type, up to 4 nodes")


@pytest.mark.parametrize("made, todo", [
    (["pyproject.toml"], "fill in <DLAMI_ID>, <ACCOUNT_ID>; build dist/slmray-0.1.0-py3-none-any.whl with pip wheel "
                         "--no-deps -w dist ."),
    (["pyproject.toml", "dist/slmray-0.1.0-py3-none-any.whl"], "fill in <DLAMI_ID>, <ACCOUNT_ID>"),
    ([], "fill in <DLAMI_ID>, <ACCOUNT_ID>; dist/slmray-0.1.0-py3-none-any.whl is not here: run ray up from the "
         "repository root, after pip wheel --no-deps -w dist . there"),
], ids=["wheel not built", "wheel built", "not at a checkout's root"])
def test_validate_names_the_wheel_ray_up_would_miss(tmp_path, monkeypatch, capsys, made, todo):
    monkeypatch.chdir(tmp_path)  # ray up reads file_mounts' sources from where it runs
    for path in made:
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(b"")
    run = call_main(capsys, cluster_main, "validate", str(CLUSTER / "h100.yaml"))
    assert run.returncode == 0 and run.stdout.rstrip().endswith(f"(before ray up: {todo})"), run.stdout


def test_min_workers_beyond_the_global_max_names_both(tmp_path):
    text = H100.replace("min_workers: 0\n    max_workers: *nodes", "min_workers: 3\n    max_workers: *nodes")
    text = text.replace("max_workers: &nodes 4", "max_workers: &nodes 2").replace("    min_workers: 0\n    max_workers: 0", "    min_workers: 1\n    max_workers: 1", 1)
    path = _write(tmp_path, text)
    with pytest.raises(ClusterError) as exc:
        load_cluster(path)
    assert str(exc.value) == (f"{path}: max_workers: 2 is less than the node types' min_workers together "
                              "(h100 3 + h100-spot 1 = 4): raise it or lower a min_workers")


def test_a_missing_mount_that_is_no_wheel_is_named(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    text = H100.replace("  /tmp/slmray-dist: dist\n", "  /tmp/slmray-dist: dist\n  /home/ubuntu/data: corpus\n")
    spec = load_cluster(_write(tmp_path, text))
    assert spec.missing_mounts == ("corpus", "dist/slmray-0.1.0-py3-none-any.whl")
    assert "; make corpus, which file_mounts copies; dist/slmray-0.1.0-py3-none-any.whl is not here" in spec.before_ray_up()


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    return str(path)


W = "available_node_types.h100"
S = "available_node_types.h100-spot"
SETUP = '  - pip install -q "ray[default]==2.60.0"'
ROLE = '      IamInstanceProfile: {Arn: "arn:aws:iam::<ACCOUNT_ID>:instance-profile/slmray-worker"}\n'
BROKEN = [  # (case, text of h100.yaml, replaced by, field named, words of the message)
    ("wrong GPU count", '"GPU": 8,', '"GPU": 4,', f"{W}.resources.GPU", "must be 8"),
    ("no accelerator type", ', "accelerator_type:H100": 1', "", f"{W}.resources", "accelerator_type:H100"),
    ("wrong accelerator type", "accelerator_type:H100", "accelerator_type:A10G", f"{W}.resources", "found accel"),
    ("float resource", '"CPU": 192', '"CPU": 191.5', f"{W}.resources.CPU", "not of type 'integer'"),
    ("integral float resource", '"GPU": 8,', '"GPU": 8.0,', f"{W}.resources.GPU", "not a whole number"),
    ("CPU count", '"CPU": 192', '"CPU": 96', f"{W}.resources.CPU", "must be 192"),
    ("secret in setup", SETUP, f"  - export AWS_SECRET_ACCESS_KEY=abc\n{SETUP}", "setup_commands[2]", "AWS credential"),
    ("key id in a comment", "# h100 at the spot price", "# AKIAABCDEFGHIJKLMNOP", "line {line}", "AWS credential"),
    ("credentials mounted", "file_mounts:\n", "file_mounts:\n  /home/ubuntu/.aws: ~/.aws\n",
     "file_mounts./home/ubuntu/.aws", "credentials"),
    ("YAML syntax", "    min_workers: 0", "    min_workers: [0", "line {next_line}, column 16", "not valid YAML"),
    ("duplicate key", "    min_workers: 0", "    min_workers: 0\n    min_workers: 1", "line {next_line}, column 5",
     "twice"),
    ("unknown top-level key", "idle_timeout_minutes:", "idle_timeout_minute:", "idle_timeout_minute",
     "did you mean idle_timeout_minutes"),
    ("no node_config", "    node_config: &gpu_node\n      InstanceType: p5",
     "    other: &gpu_node\n      InstanceType: p5",
     f"{W}.node_config", "is a required property"),
    ("head not a node type", "head_node_type: head", "head_node_type: boss", "head_node_type", "Ray rejects it"),
    ("min above max", "min_workers: 0\n    max_workers: *nodes", "min_workers: 2\n    max_workers: 1",
     f"{W}.min_workers", "more than max_workers"),
    ("instance not in table", "p5.48xlarge\n", "p6-b200.48xlarge\n", f"{W}.node_config.InstanceType", "instances.csv"),
    ("no head resource", f', "{HEAD_RESOURCE}": 1', "", "available_node_types.head.resources", HEAD_RESOURCE),
    ("default AMI", "&ami <DLAMI_ID>", "&ami latest_dlami", "available_node_types.head.node_config.ImageId", "AMI"),
    ("no instance role", ROLE, "", f"{W}.node_config.IamInstanceProfile", "instance role"),
    ("Ray's default setup", "head_setup_commands: []", "", "head_setup_commands", "nightly"),
    ("unpinned Ray", "ray[default]==2.60.0", "ray[default]", "setup_commands", "pinned ray"),
    ("other Ray", "ray[default]==2.60.0", "ray[default]==2.59.0", "setup_commands[2]", "2.59.0"),
    ("wheel not mounted", '"/tmp/slmray-dist/slmray-0.1.0-py3-none-any.whl[hf]', '"/tmp/other/slmray-0.1.0-py3-none-any.whl[hf]',
     "setup_commands[2]", "file_mounts does not copy"),
    ("other wheel in the mounted folder", "slmray-dist/slmray-0.1.0-py3-none-any.whl[hf]",
     "slmray-dist/slmray-0.0.9-py3-none-any.whl[hf]", "setup_commands[2]", "slmray 0.0.9, but this checkout's version is"),
    ("stale slmray pin", '"torch==2.13.0"', '"torch==2.13.0" "slmray==0.0.9"', "setup_commands[2]",
     "slmray 0.0.9, but this checkout's version is"),
    ("unsupported provider", "type: aws", "type: gcp", "provider.type", "'gcp'"),
    # The spot twin gets the same checks as its on-demand type, and its market options EC2's.
    ("spot GPU count", '"GPU": 8, "accelerator_type:H100": 1}\n    node_config: {<<',
     '"GPU": 4, "accelerator_type:H100": 1}\n    node_config: {<<', f"{S}.resources.GPU", "must be 8"),
    ("spot accelerator type", 'accelerator_type:H100": 1}\n    node_config: {<<',
     'accelerator_type:A100": 1}\n    node_config: {<<', f"{S}.resources", "found accelerator_type:A100"),
    ("spot market typo", "{MarketType: spot}", "{MarketTyp: spot}", f"{S}.node_config.InstanceMarketOptions",
     'Unknown parameter in input: "MarketTyp"'),
    ("spot market value", "{MarketType: spot}", "{MarketType: Spot}",
     f"{S}.node_config.InstanceMarketOptions.MarketType",
     "'Spot' is not an EC2 market type"),
    ("spot market not a mapping", "{MarketType: spot}", "spot", f"{S}.node_config.InstanceMarketOptions",
     "EC2 would refuse it"),
]


@pytest.mark.parametrize("old, new, field, problem", [pytest.param(*case[1:], id=case[0]) for case in BROKEN])
def test_a_broken_file_gives_one_line_naming_file_and_field(tmp_path, old, new, field, problem):
    assert old in H100
    line = H100[: H100.index(old)].count("\n") + 1
    path = _write(tmp_path, H100.replace(old, new, 1))
    with pytest.raises(ClusterError) as info:
        load_cluster(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: {field.format(line=line, next_line=line + 1)}: "), msg
    assert problem in msg and "\n" not in msg


def test_a_fake_multinode_file_is_validated_as_written(tmp_path):
    text = (CLUSTER / "local.yaml").read_text().replace("cluster_synced_files: []\n", "")
    with pytest.raises(ClusterError, match="cluster_synced_files"):
        load_cluster(_write(tmp_path, text))


def test_cli_good_and_bad(tmp_path, capsys):
    good = call_main(capsys, cluster_main, "validate", str(CLUSTER / "h100.yaml"))
    assert good.returncode == 0, good.stderr
    assert good.stdout.startswith(
        f"ok {CLUSTER / 'h100.yaml'}: head + 2 worker types, up to 32 x H100-80GB; spot: 1 type, off (max_workers 0)"
    )
    bad = _write(tmp_path, H100.replace('"GPU": 8,', '"GPU": 4,'))
    out = call_main(capsys, cluster_main, "validate", str(CLUSTER / "a10g.yaml"), bad)
    assert out.returncode == 2
    assert out.stdout.startswith("ok ") and "a10g.yaml" in out.stdout
    assert out.stderr.strip() == f"error: {bad}: available_node_types.h100.resources.GPU: " + (
        "must be 8: p5.48xlarge has 8 x H100-80GB, 192 vCPUs (slmray/catalog/instances.csv), got 4"
    )


def test_a_file_that_is_not_utf8_is_one_line(tmp_path):
    path = tmp_path / "latin1.yaml"
    path.write_bytes("cluster_name: café\n".encode("latin-1"))
    with pytest.raises(ClusterError, match="not UTF-8 text .* a cluster file is YAML"):
        load_cluster(str(path))
