"""The interval around a tokens/s prediction: it holds the prediction and widens where the
prediction extrapolates."""

from slmray.predict.estimate import estimate
from slmray.train.config import TrainConfig
from slmray.train.presets import get_model as preset


def test_interval_holds_the_prediction_and_widens_off_profile_and_across_gpus():
    cfg = TrainConfig(model=preset("llama-100m"), per_device_batch=8, seq_len=512, attention="sdpa")
    one = estimate(cfg, "H100-80GB", 1)
    assert one.tokens_per_s_low < one.tokens_per_s < one.tokens_per_s_high
    bare = estimate(cfg, "H100-80GB", 1, use_profile=False)
    assert bare.tokens_per_s_high / bare.tokens_per_s_low > one.tokens_per_s_high / one.tokens_per_s_low
    ddp = estimate(TrainConfig(model=preset("llama-100m"), per_device_batch=8, seq_len=512, attention="sdpa",
                               strategy="ddp"), "H100-80GB", 4)
    assert ddp.tokens_per_s_high / ddp.tokens_per_s_low > one.tokens_per_s_high / one.tokens_per_s_low
