"""Planning a training run from measurements: which GPU type, how many GPUs and which configuration
train a model on D tokens by a deadline or within a budget, how long it takes and what it costs.

Modules, in the order the data flows: `assumptions` (what a run costs beyond D / tokens/s: start-up,
compile, checkpoints), `options` (the options a results frame supports and each one's tokens/s,
measured or predicted), `run` (`plan_run`: the options priced, timed and kept or excluded, as a
`Decision`), `text` (the decision in sentences and tables, for `python -m slmray.recommend` and the
report).  A package of its own beside `slmray.analysis`, not inside it: the report lays plans out
(`slmray.analysis.decision`), and the command plans without loading the analysis (matplotlib, the
findings); both stand on this package, which stands on the prediction, the catalog and the core.
"""
