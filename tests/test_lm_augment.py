"""LLM data generation: text for each requested item, a repeated run served from the store, an
interrupted run resumed, the sidecar merged back into a loaded dataset, and the CLI command."""
from __future__ import annotations

import argparse

import numpy as np
import pandas as pd
import pytest

from lego_core.cli.augment import add_augment_command
from lego_core.data import generated
from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError
from lego_core.lm import generation as aug

TEMPLATE = "Describe this movie in a few words.\n{title} ({genres})"


def _dataset() -> Dataset:
    items = pd.DataFrame({"item_id": ["1", "2", "3", "4", "5", "6"],
                          "title": ["Toy Story", "GoldenEye", "Four Rooms", "Get Shorty", "Copycat", "Heat"],
                          "genres": ["Animation Comedy", "Action Thriller", "Thriller", "Comedy Drama",
                                     "Crime Thriller", "Action Crime"]})
    return Dataset("tiny", items, np.array(["u1"]), np.array([0, 0]), np.zeros(0, dtype=np.int64), {},
                   text_fields=["title", "genres"])


class CountingGenerator(aug.Generator):
    """The real generator, counting the prompts it answers."""

    calls: list[int] = []

    def __call__(self, prompts):
        CountingGenerator.calls.append(len(prompts))
        return super().__call__(prompts)


@pytest.fixture
def counting(monkeypatch):
    CountingGenerator.calls = []
    monkeypatch.setattr(aug, "Generator", CountingGenerator)
    return CountingGenerator.calls


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> str:
    """A local folder with a tiny random Llama (2 layers, width 32) and MiniLM's tokenizer: the
    store/resume/CLI mechanics run in milliseconds, and it exercises 'any local folder' loading.
    Special-token embeddings are zero so greedy decoding always yields visible words."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from lego_core.lm.models import resolve

    folder = tmp_path_factory.mktemp("tiny-llm")
    tok = AutoTokenizer.from_pretrained(resolve("minilm").path, local_files_only=True)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
                         tie_word_embeddings=True, pad_token_id=tok.pad_token_id, eos_token_id=tok.sep_token_id,
                         bos_token_id=tok.cls_token_id)
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        model.model.embed_tokens.weight[tok.all_special_ids] = 0
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


def test_smollm2_generates_text_then_repeat_is_served_from_store(counting, monkeypatch):
    data = _dataset()
    out = aug.augment(data, "blurb", TEMPLATE, max_new_tokens=6, batch_size=2, limit=2, system="Answer briefly.")
    texts = out.items["blurb"].tolist()
    assert all(isinstance(t, str) and len(t.strip()) > 1 for t in texts[:2]) and texts[2:] == [""] * 4
    assert counting == [2] and "blurb" not in data.items.columns  # input dataset untouched
    assert out.items["title"].tolist() == data.items["title"].tolist()

    def no_model(*args, **kwargs):
        raise AssertionError("a repeated run must not load the model")

    monkeypatch.setattr(aug, "Generator", no_model)
    again = aug.augment(data, "blurb", TEMPLATE, max_new_tokens=6, batch_size=1, limit=2, system="Answer briefly.")
    assert again.items["blurb"].tolist() == texts
    with pytest.raises(AssertionError, match="must not load"):  # other settings: other store keys
        aug.augment(data, "blurb", TEMPLATE, max_new_tokens=7, limit=2, system="Answer briefly.")


def test_interrupted_run_resumes_with_the_rest(counting, tiny):
    data = _dataset()
    seen = []

    def stop_after_first_batch(done, total):
        seen.append(done)
        if done >= 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        aug.augment(data, "kw", TEMPLATE, model=tiny, max_new_tokens=4, batch_size=2, limit=5,
                    progress=stop_after_first_batch)
    assert counting == [2] and seen == [0, 2]
    counting.clear()
    progress = []
    out = aug.augment(data, "kw", TEMPLATE, model=tiny, max_new_tokens=4, batch_size=2, limit=5,
                      progress=lambda d, t: progress.append((d, t)))
    assert sum(counting) == 3  # only the items the interrupted run had not finished
    assert progress[0] == (2, 5) and progress[-1] == (5, 5)
    assert all(t.strip() for t in out.items["kw"].tolist()[:5])


def test_sidecar_is_merged_into_a_loaded_dataset(counting, tiny):
    data = _dataset()
    out = aug.augment(data, "blurb", TEMPLATE, model=tiny, max_new_tokens=4, batch_size=4, limit=2)
    assert generated.augmented_fields(data) == ["blurb"]
    merged = generated.load_augmented(_dataset())
    assert merged.items["blurb"].tolist() == out.items["blurb"].tolist()
    assert merged.info["augmented"] == ["blurb"] and merged.text_fields == ["title", "genres"]
    from lego_core.data.text import item_texts

    assert item_texts(merged, ["blurb"])[:2] == out.items["blurb"].tolist()[:2]  # selectable as input
    # regenerating an augmented field is allowed; overwriting an original column is not
    aug.augment(merged, "blurb", TEMPLATE, model=tiny, max_new_tokens=4, limit=1)
    with pytest.raises(DataError, match="already an item column"):
        aug.augment(merged, "title", TEMPLATE, model=tiny, limit=1)


def test_bad_field_and_template_are_data_errors():
    with pytest.raises(DataError, match="not allowed"):
        aug.augment(_dataset(), "bad name", TEMPLATE, limit=1)
    with pytest.raises(DataError, match="unknown item field"):
        aug.augment(_dataset(), "x", "Describe {plot}.", limit=1)
    with pytest.raises(DataError):
        aug.augment(_dataset(), "x", "Describe {title.__class__}.", limit=1)


def test_cli_command_generates_and_prints(counting, tiny, monkeypatch, capsys):
    from lego_core.data import datasets

    monkeypatch.setattr(datasets, "load", lambda name, **kw: _dataset())
    parser = argparse.ArgumentParser()
    add_augment_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["augment", "tiny", "--field", "description", "--limit", "2",
                              "--max-new-tokens", "4", "--batch-size", "2", "--model", tiny])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "description: 2 items" in out and "description.parquet" in out
    assert generated.load_augmented(_dataset()).items["description"].tolist()[2:] == ["", "", "", ""]
