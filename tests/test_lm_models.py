"""Offline model resolution and loading: packaged defaults, local folders, clear errors, and the
converted GGUF folder that makes later SmolLM2 loads fast."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest
import torch

from lego_core.core.errors import ModelNotAvailableError
from lego_core.lm import models
from lego_core.core.paths import PROJECT_ROOT


def test_packaged_defaults_resolve_to_files():
    enc = models.resolve("minilm")
    assert enc.origin == "package" and (enc.path / "config.json").exists() and enc.gguf_file is None
    dec = models.resolve("smollm2")
    assert dec.origin == "package" and dec.gguf_file == models.SMOLLM2_GGUF
    assert (dec.path / dec.gguf_file).stat().st_size > 50_000_000
    assert models.resolve("sentence-transformers/all-MiniLM-L6-v2").path == enc.path  # hub id falls back
    assert enc.signature() == models.resolve("minilm").signature() != dec.signature()


def test_local_folder_and_gguf_file_paths(tmp_path):
    enc = models.resolve(str(models.resolve("minilm").path))
    assert enc.origin == "local" and enc.gguf_file is None
    dec = models.resolve(str(models.resolve("smollm2").path / models.SMOLLM2_GGUF))
    assert dec.origin == "local" and dec.gguf_file == models.SMOLLM2_GGUF


@pytest.mark.parametrize("name", ["nobody/no-such-model-xyz", str("/nonexistent/model/folder"), "not-a-model"])
def test_missing_model_is_one_clear_line_without_network(name, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.perf_counter()
    with pytest.raises(ModelNotAvailableError) as err:
        models.load_encoder(name)
    assert time.perf_counter() - start < 5
    message = str(err.value)
    assert "\n" not in message and name in message
    assert "Hugging Face cache" in message and "local model folder" in message


def test_missing_model_in_fresh_process_does_not_hang(tmp_path):
    """A fresh interpreter (HF libraries imported from scratch) fails fast with the same error."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "LEGO_CACHE_DIR": str(tmp_path)}
    code = ("from lego_core.lm.models import load_decoder\nfrom lego_core.core.errors import ModelNotAvailableError\n"
            "try:\n    load_decoder('someone/missing-llm')\nexcept ModelNotAvailableError as e:\n    print('ERR', e)\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.stdout.startswith("ERR model 'someone/missing-llm' is not available offline")


def test_encoder_loads_as_bert_in_eval_mode():
    net, tok = models.load_encoder("minilm")
    assert type(net).__name__ == "BertModel" and not net.training
    assert net.config.hidden_size == 384 and net.config.num_hidden_layers == 6
    assert tok("hello world")["input_ids"][0] == tok.cls_token_id


def test_decoder_gguf_converted_once_then_loaded_from_cache(tmp_path, monkeypatch):
    net, tok = models.load_decoder("smollm2")
    assert type(net).__name__ == "LlamaForCausalLM" and net.config.num_hidden_layers == 30
    assert net.lm_head.weight.data_ptr() == net.model.embed_tokens.weight.data_ptr()  # tied, as in the GGUF
    folder = models.model_folder(models.resolve("smollm2"))
    assert (folder / "model.safetensors").exists() and (folder / "tokenizer.json").exists()
    start = time.perf_counter()
    again, _ = models.load_decoder("smollm2")
    assert time.perf_counter() - start < 10  # the 15 s GGUF dequantisation is not repeated
    x = tok(["a small test"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(net(**x).logits, again(**x).logits)
