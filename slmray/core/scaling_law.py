"""A data-scaling law and a critical batch, each with its source: what loss a number of training
tokens buys a model of N parameters, for the analysis's "loss you can buy" and the planner.

    L(N, D) = E + A / N^alpha + B / D^beta

Hoffmann et al. 2022 ("Training Compute-Optimal Large Language Models", Approach 3, their Eq. 10):
E 1.69, A 406.4, B 410.7, alpha 0.34, beta 0.28, loss in nats per token.  The critical batch is
Kaplan et al. 2020 ("Scaling Laws for Neural Language Models", Eq. 5.3):
B_crit(L) = B* / L^(1/alpha_B), B* 2e8 tokens, alpha_B 0.21.

Both are fits on other data than a user's: Chinchilla on MassiveText with a SentencePiece
tokenizer, Kaplan on WebText2 with GPT-2's; a loss here reads "on their data", a guide to how
much more data or a larger model buys, not a prediction of a user's own loss.  Tokens/s and so
tokens per dollar measured at one batch turn into loss at the same rate at any batch only below
the critical batch: past it, more tokens per step buy less loss per token.
"""

from __future__ import annotations

import numpy as np

CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
KAPLAN_CRITICAL_BATCH = {"B_star": 2e8, "alpha_B": 0.21}

SOURCE = ("Chinchilla's L(N, D) = E + A/N^alpha + B/D^beta (Hoffmann et al. 2022, Approach 3: E 1.69, A 406.4, "
          "B 410.7, alpha 0.34, beta 0.28; nats per token)")
CAVEATS = (
    "The law was fitted on another dataset and tokenizer (MassiveText, SentencePiece), so its losses are theirs, "
    "not your data's: read them as how the loss moves with tokens and model size.",
    "Tokens per $ measured at one batch buy loss at the same rate at any batch only below the critical batch "
    "(Kaplan et al. 2020, Eq. 5.3: B_crit(L) = 2e8 / L^(1/0.21) tokens per step); past it each token buys less.",
)


def loss(n_params, tokens):
    """L(N, D) of the Chinchilla law, nats per token; NaN where N or D is not positive."""
    n = np.asarray(n_params, dtype=float)
    d = np.asarray(tokens, dtype=float)
    c = CHINCHILLA
    with np.errstate(divide="ignore", invalid="ignore"):
        value = c["E"] + c["A"] / n ** c["alpha"] + c["B"] / d ** c["beta"]
    return np.where((n > 0) & (d > 0), value, np.nan)


def loss_floor(n_params):
    """L(N, infinite data): the least loss a model of N parameters reaches under the law."""
    n = np.asarray(n_params, dtype=float)
    c = CHINCHILLA
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(n > 0, c["E"] + c["A"] / n ** c["alpha"], np.nan)


def tokens_for_loss(n_params, target):
    """The training tokens D at which L(N, D) = target; inf where the target is at or below the
    model's floor (no amount of data reaches it)."""
    excess = np.asarray(target, dtype=float) - loss_floor(n_params)
    c = CHINCHILLA
    with np.errstate(divide="ignore", invalid="ignore"):
        d = (c["B"] / excess) ** (1.0 / c["beta"])
    return np.where(excess > 0, d, np.inf)


def critical_batch_tokens(loss_nats):
    """Kaplan's critical batch (tokens per optimizer step) at a loss, in nats per token."""
    k = KAPLAN_CRITICAL_BATCH
    return k["B_star"] / np.asarray(loss_nats, dtype=float) ** (1.0 / k["alpha_B"])
