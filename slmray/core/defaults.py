"""What a null means in a results table: no pyarrow here, so the trainer's config (which `--help`
paths import) can read it too."""

ROW_DEFAULTS = {
    "precision": "bf16", "activation_checkpointing": False, "compile": False, "grad_accum": 1,
    "loss_kernel": "standard", "backend": "native",
}
"""What a null in a configuration column means in a table written before that column existed: the
trainer's default of the day.  Filled where a table is read (`slmray.results.table.to_frame`) and
where a row becomes a TrainConfig (`TrainConfig.from_row`), from here."""
