"""The renting rule (slmray.catalog.rent): N GPUs priced at the instances that hold them, idle GPUs
included, and the link the option's prediction then assumes."""

import warnings

import numpy as np
import pytest

from slmray.catalog.prices import PriceBook, PriceWarning
from slmray.catalog.rent import Rental, layouts, rent
from slmray.predict.estimate import estimate
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model

AWS = PriceBook.load("aws")


def test_one_h100_on_aws_is_a_p5_4xlarge_not_an_eighth_of_a_p5_48xlarge():
    r = rent(AWS, "H100-80GB", 1)
    assert (r.instances, r.instance_type, r.gpus_billed, r.idle_gpus) == (1, "p5.4xlarge", 1, 0)
    assert r.usd_per_hour == pytest.approx(6.88) and r.description == "p5.4xlarge, 1 GPU"
    assert r.link == (1, None, None)
    assert "p5.4xlarge on-demand us-east-1" in r.source


def test_four_h100_are_half_a_p5_48xlarge_or_four_p5_4xlarge_joined_by_100_gbps():
    big, small = sorted(layouts(AWS, "H100-80GB", 4), key=lambda r: -r.gpus_per_node)
    assert big == Rental(1, "p5.48xlarge", 8, 4, 55.04, 4, None, None, "p5.48xlarge, 8 GPUs, 4 idle", big.source)
    assert (small.instances, small.instance_type, small.gpus_billed, small.idle_gpus) == (4, "p5.4xlarge", 4, 0)
    assert small.usd_per_hour == pytest.approx(4 * 6.88)
    assert small.link == (1, 100.0, "ethernet")  # p5.4xlarge: 100 Gbps without EFA
    assert small.description == "4 x p5.4xlarge, joined by 100 Gbps"
    # without a speed (a measured row: it ran on one node), the fewest instances
    assert rent(AWS, "H100-80GB", 4) == big


def test_the_choice_weighs_cost_by_the_speed_of_each_link():
    asked = []

    def speed(gpus_per_node, inter_node_gbps, fabric):
        asked.append((gpus_per_node, inter_node_gbps, fabric))
        return {4: 1000.0, 1: slow}[gpus_per_node]

    slow = 600.0  # 4 x p5.4xlarge at half the price: cheaper per token above 500 tok/s
    assert rent(AWS, "H100-80GB", 4, speed).instance_type == "p5.4xlarge"
    assert sorted(asked, key=str) == [(1, 100.0, "ethernet"), (4, None, None)]
    slow = 400.0
    assert rent(AWS, "H100-80GB", 4, speed).instance_type == "p5.48xlarge"


def test_the_link_reaches_the_estimate_and_slows_a_ddp_run_over_100_gbps():
    cfg = TrainConfig(model=get_model("llama-1b"), strategy="ddp", seq_len=1024, per_device_batch=8)
    seen = {}

    def speed(gpus_per_node, inter_node_gbps, fabric):
        e = estimate(cfg, "H100-80GB", 4, gpus_per_node=gpus_per_node, inter_node_gbps=inter_node_gbps, fabric=fabric)
        seen[gpus_per_node, inter_node_gbps, fabric] = e.tokens_per_s
        return e.tokens_per_s

    chosen = rent(AWS, "H100-80GB", 4, speed)
    assert set(seen) == {(4, None, None), (1, 100.0, "ethernet")}
    assert seen[1, 100.0, "ethernet"] < seen[4, None, None]  # 1.2B fp32 gradients all-reduced over 100 Gbps, not NVLink
    per_token = {r.instance_type: r.usd_per_hour / seen[r.link] for r in layouts(AWS, "H100-80GB", 4)}
    assert chosen.instance_type == min(per_token, key=per_token.get)


def test_h200_on_aws_on_demand_is_billed_eight_gpus():
    for n in (1, 4, 8):
        r = rent(AWS, "H200", n)
        assert (r.instance_type, r.gpus_billed, r.idle_gpus) == ("p5en.48xlarge", 8, 8 - n)
        assert r.usd_per_hour == pytest.approx(63.296)
    assert rent(AWS, "H200", 4).description == "p5en.48xlarge, 8 GPUs, 4 idle"
    twelve = rent(AWS, "H200", 12)
    assert (twelve.instances, twelve.gpus_billed, *twelve.link) == (2, 16, 8, 3200.0, "efa")
    assert twelve.description == "2 x p5en.48xlarge, 16 GPUs, 4 idle, joined by 3200 Gbps"


def test_gcp_and_lambda():
    gcp = rent(PriceBook.load("gcp"), "H100-80GB", 1)  # GCP sells the H100 only as a3-highgpu-8g
    assert (gcp.instance_type, gcp.gpus_billed, gcp.idle_gpus) == ("a3-highgpu-8g", 8, 7)
    assert gcp.usd_per_hour == pytest.approx(88.49)
    lam = PriceBook.load("lambda")
    one = rent(lam, "H100-80GB", 1)
    assert (one.instance_type, one.usd_per_hour) == ("gpu_1x_h100_sxm5", pytest.approx(4.29))
    # four 1-GPU Lambda instances: a network Lambda does not publish cannot be predicted, so not taken
    four = rent(lam, "H100-80GB", 4, lambda gpus_per_node, gbps, fabric: 1000.0)
    assert (four.instance_type, four.idle_gpus, four.usd_per_hour) == ("gpu_8x_h100_sxm5", 4, pytest.approx(31.92))
    # where no other layout exists it is taken, and says so
    a100 = rent(PriceBook.load("gcp"), "A100-40GB", 16)
    assert (a100.instances, a100.instance_type, a100.inter_node_gbps, a100.fabric) == (2, "a2-highgpu-8g", None, None)
    assert a100.description.endswith("joined by an unpublished network")


def test_per_gpu_pricing_keeps_the_gpu_hour_figure():
    book = PriceBook.load("aws", per_gpu=True)
    r = rent(book, "H100-80GB", 4)
    assert (r.instances, r.instance_type, r.gpus_billed, r.idle_gpus) == (0, "", 4, 0) and r.per_gpu
    assert r.usd_per_hour == pytest.approx(4 * 6.88)
    assert r.link == (4, None, None)  # the GPUs of one shared p5.48xlarge
    assert r.description == "4 GPUs at 6.88 per GPU-hour"
    h200 = rent(book, "H200", 1)
    assert h200.usd_per_hour == pytest.approx(63.296 / 8) and h200.gpus_billed == 1
    sixteen = rent(book, "H100-80GB", 16)
    assert sixteen.link == (8, 3200.0, "efa")


def test_profiles_and_prices_without_instances_are_per_gpu():
    paper = rent(PriceBook.load("paper"), "H100-80GB", 4)
    assert paper.per_gpu and paper.usd_per_hour == pytest.approx(4 * 2.53)
    assert rent(PriceBook.load("local"), "cpu", 2).usd_per_hour == 0.0
    override = rent(PriceBook.load("aws", overrides={"H100-80GB": 3.0}), "H100-80GB", 4)
    assert override.per_gpu and override.usd_per_hour == 12.0 and override.source == "override"
    # the override replaces only its GPU's instances
    assert rent(PriceBook.load("aws", overrides={"H100-80GB": 3.0}), "H200", 1).gpus_billed == 8


def test_a_sweeps_trials_share_the_nodes_of_a_cluster_that_is_up():
    one = rent(AWS, "H200", 1, node_gpus=8)  # one trial of eight side by side on a p5en.48xlarge
    assert (one.instance_type, one.gpus_billed, one.idle_gpus) == ("p5en.48xlarge", 1, 0)
    assert one.usd_per_hour == pytest.approx(63.296 / 8) and one.description == "1 GPU of a p5en.48xlarge (a cluster's, shared)"
    assert one.link == (1, None, None)
    span = rent(AWS, "H100-80GB", 12, lambda n, g, f: 1e9, node_gpus=8)  # the cluster's link, whatever the speed
    assert (span.instances, *span.link) == (2, 8, 3200.0, "efa")
    assert span.usd_per_hour == pytest.approx(12 * 55.04 / 8)
    assert span.description == "12 GPUs of 2 x p5.48xlarge (a cluster's, shared), joined by 3200 Gbps"
    small = rent(AWS, "H100-80GB", 1, node_gpus=1)  # a one-GPU machine: a p5.4xlarge
    assert (small.instance_type, small.usd_per_hour) == ("p5.4xlarge", pytest.approx(6.88))
    # no instance of that size (a two-GPU workstation): the GPU-hour price
    two = rent(AWS, "H200", 2, node_gpus=2)
    assert two.per_gpu and two.usd_per_hour == pytest.approx(2 * 63.296 / 8) and two.gpus_per_node == 2


def test_no_price_no_gpu_type_and_bad_counts():
    assert rent(AWS, None, 4) is None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert rent(PriceBook.load("aws"), "H100-PCIe", 1) is None
    assert [w.category for w in caught] == [PriceWarning]
    with pytest.raises(ValueError, match="num_gpus: must be a positive integer, got 0"):
        rent(AWS, "H100-80GB", 0)
    with pytest.raises(ValueError, match="num_gpus: must be a positive integer, got 2.0"):
        rent(AWS, "H100-80GB", 2.0)
    assert rent(AWS, "H200", np.int64(4)).idle_gpus == 4  # a results table's integer
    # a speed that knows nothing: the fewest instances
    assert rent(AWS, "H100-80GB", 4, lambda n, g, f: None).instance_type == "p5.48xlarge"


def test_per_gpu_pricing_flag_of_every_command():
    from slmray.catalog.prices import PriceError
    from slmray.cli import add_price_arguments, parser, price_book

    p = parser("prog")
    add_price_arguments(p, "whatever")
    book = price_book(p.parse_args(["--prices", "aws", "--per-gpu-pricing"]))
    assert book.per_gpu and rent(book, "H200", 1).usd_per_hour == pytest.approx(63.296 / 8)
    assert price_book(p.parse_args(["--per-gpu-pricing"]), "aws").per_gpu  # the space's profile (tune)
    assert not price_book(p.parse_args(["--prices", "aws"])).per_gpu
    with pytest.raises(PriceError, match="--per-gpu-pricing: prices from a profile per GPU; give --prices PROFILE"):
        price_book(p.parse_args(["--per-gpu-pricing"]))  # analysis, recommend: the recorded prices stand
