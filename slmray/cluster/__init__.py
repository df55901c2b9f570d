"""Ray cluster files (`cluster/*.yaml`): their node types and the checks `python -m slmray.cluster
validate` runs (`files`).
"""
