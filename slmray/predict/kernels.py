"""The small-problem side of the step-time model: what one step asks of the device kernel by kernel
(GEMM shapes, kernel counts) and of the host, with the constants a GPU profile measured
(`slmray.catalog.profiles`) or, for a GPU type without one, its datasheet and stated priors.
"""

from __future__ import annotations

from slmray.train.config import ModelConfig


def linear_shapes(m: ModelConfig) -> list[tuple[int, int, bool]]:
    """(in_features, out_features, in_every_block) of the GEMMs a token goes through."""
    d, h = m.d_model, m.d_mlp
    mlp = [(d, 2 * h, True), (h, d, True)] if m.family == "llama" else [(d, h, True), (h, d, True)]
    return [(d, 3 * d, True), (d, d, True), *mlp, (d, m.vocab_size, False)]
