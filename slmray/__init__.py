"""slmray: measure which GPUs, batch sizes, attention kernels and parallelism give small
language models the most tokens per second and per dollar, with Ray Tune and Ray Train."""

import importlib
import importlib.abc
import importlib.util
import sys

__version__ = "0.1.0"

MOVED = {
    "slmray.config": "slmray.train.config", "slmray.presets": "slmray.train.presets",
    "slmray.model": "slmray.train.model", "slmray.attention": "slmray.train.attention",
    "slmray.parallel": "slmray.train.parallel", "slmray.fp8": "slmray.train.fp8",
    "slmray.metrics": "slmray.train.metrics", "slmray.train_cli": "slmray.train.cli",
    "slmray.data_cli": "slmray.data.cli", "slmray.hardware": "slmray.catalog.gpus",
    "slmray.instances": "slmray.catalog.instances", "slmray.prices": "slmray.catalog.prices",
    "slmray.csvdata": "slmray.catalog.tables", "slmray.estimate": "slmray.predict.estimate",
    "slmray.calibration": "slmray.predict.calibration", "slmray.capacity": "slmray.sweep.capacity",
    "slmray.plan": "slmray.sweep.plan", "slmray.searchers": "slmray.sweep.searchers",
    "slmray.trial": "slmray.sweep.trial", "slmray.warm": "slmray.sweep.warm",
    "slmray.driver": "slmray.sweep.driver", "slmray.lock": "slmray.sweep.lock",
    "slmray.storage": "slmray.results.storage",
}
"""Modules moved into the stage packages (2026-12-04), by their old names.  A sweep begun before
pickled its searcher, trainable and callbacks into its state under these names; resolving them
lets `--resume` continue it.  The committed precision sweeps' state still needs them
(tests/test_imports.py loads it with and without): remove this shim on 2027-03-01, or earlier once
no committed state needs it; a sweep begun before the move can no longer resume from then on."""


class _MovedModule(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Imports an old name of `MOVED` as a module whose attributes are the new module's."""

    def find_spec(self, name, path=None, target=None):
        return importlib.util.spec_from_loader(name, self) if name in MOVED else None

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        new = importlib.import_module(MOVED[module.__name__])
        module.__getattr__ = lambda name: getattr(new, name)


sys.meta_path.append(_MovedModule())
