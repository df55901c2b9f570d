"""One H100: `h100x1_models_compiled.py` for Qwen3-0.6B and Llama-3.2-1B (the compiled half of
`h100x1_models.py` for the two models that file leaves out), native against Transformers, standard
against chunked loss."""

import dataclasses
import runpy
from pathlib import Path

SPACE = dataclasses.replace(runpy.run_path(str(Path(__file__).with_name("h100x1_models_compiled.py")))["SPACE"],
                            model=["qwen3-0.6b", "llama-3.2-1b"],
                            per_device_batch={"qwen3-0.6b": [16], "llama-3.2-1b": [16]})
