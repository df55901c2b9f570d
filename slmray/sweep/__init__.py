"""The sweep: a search space (`space`) checked against what the cluster can hold (`capacity`), planned
and priced (`plan`), searched (`searchers`), each trial run (`trial`) on warm worker groups (`warm`,
its rules in `warm_scheduler`, a failed group's error read by `failure`) by the driver on Ray
(`driver`), one driver per sweep (`lock`).  `python -m slmray.tune` is its command.
"""
