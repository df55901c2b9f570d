"""Analysis of results tables: costs, Pareto fronts, the paper's findings, plots and the report.

    python -m slmray.analysis RESULTS.parquet... --out DIR

Modules, in the order the data flows: `table` (a results table as one DataFrame), `costs`
(prices per trial, tokens per dollar, loss per dollar, the best-over-the-rest reduction),
`pareto` (objectives, non-dominated sets, best configurations), `findings` (the paper's
questions as small tables), `accuracy` (the estimate's recorded predictions against the
measurements), `plots` (matplotlib figures), `report` (Markdown and HTML).
Each is importable on its own; the notebook `analysis/bottlenecks.ipynb` calls them.
"""
