"""The search-space API of `search_spaces/*.py`: `from slmray.space import SearchSpace`.

Defined in `slmray.sweep.space`; this name is the one the spaces users write import, and stays.
"""

from slmray.sweep.space import SearchSpace

__all__ = ["SearchSpace"]
