"""What the sweep and the analysis share, below both: the results row (its schema and its one
builder), objectives, the cost formulas and the Pareto mask.

Nothing here imports the trainer, the sweep or the analysis; each module imports only the
standard library, numpy or pyarrow (and `slmray.train.config` for its error type), so a search space,
the driver, a benchmark and the analysis all stand on the same definitions.
"""
