"""LLM as data generator: write a new item field (a description, keywords, a better title) from the
existing fields with a local instruct model (default SmolLM2-135M-Instruct).

Each item's prompt is an editable template filled from its fields (`{title}`, `{genres}`, ...)
and wrapped in the model's chat template; generation is greedy and batched (left padding). Every
answer goes into a diskcache store under `cache_dir("augment", "store")` keyed by (model, template,
prompt text, generation settings) as soon as its batch finishes, so an interrupted run resumes
where it stopped and a repeated run is served from the store. The new column is written as a
parquet sidecar under `cache_dir("augment", <dataset key>)`; `load_augmented(dataset)` adds every
generated field to a freshly loaded dataset so content operators can select it.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

from lego_core.data.cache import (CORRUPT_ERRORS, CorruptFile, describe, discard, expect, open_diskcache,
                                  read_file)
from lego_core.data.io import warn
from lego_core.data.schema import Dataset
from lego_core.errors import DataError
from lego_core.fileio import atomic_write_bytes
from lego_core.paths import cache_dir

STORE_VERSION = 1
DEFAULT_MODEL = "smollm2"
INSTRUCTIONS = {  # built-in prompts by field name; the item's text fields are appended
    "description": "Describe this item in one short sentence.",
    "keywords": "List five comma-separated keywords for this item.",
    "better_title": "Rewrite this title to be more informative, in at most ten words.",
}
_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")  # used with fullmatch: no trailing newline


def dataset_key(dataset: Dataset) -> str:
    """Folder name of a dataset's sidecars: its name + a hash of its item ids (options such as
    the negative count or seed do not change the items, so they share the generated fields)."""
    ids = "\n".join(map(str, dataset.items["item_id"].tolist()))
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", dataset.name)[:40] or "dataset"
    return f"{safe}-{hashlib.sha256(ids.encode()).hexdigest()[:16]}"


def _sidecar_dir(dataset: Dataset) -> Path:
    return cache_dir("augment", dataset_key(dataset))


def augmented_fields(dataset: Dataset) -> list[str]:
    """Names of the generated fields saved for this dataset."""
    return sorted(p.stem for p in _sidecar_dir(dataset).glob("*.parquet") if _FIELD.fullmatch(p.stem))


def _read_sidecar(path: Path, field: str) -> dict[str, str]:
    """item_id -> generated text of a sidecar; CorruptFile naming it when it cannot be used."""
    side = read_file(path, pd.read_parquet)
    expect("item_id" in side.columns and field in side.columns, path,
           f"lacks column(s) {[c for c in ('item_id', field) if c not in side.columns]}")
    return read_file(path, lambda _: dict(zip(side["item_id"].astype(str), side[field].astype(str))))


def load_augmented(dataset: Dataset) -> Dataset:
    """`dataset` with every saved generated field joined into `items` by item_id ('' where an
    item has none). Original columns are never replaced. A corrupt sidecar is reported in one line
    and removed (the answers stay in the store: `augment` writes it again without regenerating)."""
    fields = [f for f in augmented_fields(dataset) if f not in dataset.items.columns]
    if not fields:
        return dataset
    items = dataset.items.copy()
    ids = items["item_id"].astype(str)
    joined = []
    for field in fields:
        path = _sidecar_dir(dataset) / f"{field}.parquet"
        try:
            values = _read_sidecar(path, field)
        except CorruptFile as exc:
            warn(f"generated field {field!r}: {exc}; removed it, run `python -m lego_core augment {dataset.name} "
                 f"--field {field}` again to restore it")
            discard(path)
            continue
        items[field] = ids.map(values).fillna("").astype(str).to_numpy()
        joined.append(field)
    if not joined:
        return dataset
    info = {**dataset.info, "augmented": sorted(set(dataset.info.get("augmented", [])) | set(joined))}
    return replace(dataset, items=items, info=info)


def _save_sidecar(dataset: Dataset, field: str, values: list[str]) -> Path:
    path = _sidecar_dir(dataset) / f"{field}.parquet"
    frame = pd.DataFrame({"item_id": dataset.items["item_id"].astype(str).to_numpy(), field: values})
    atomic_write_bytes(path, frame.to_parquet(index=False))
    return path


def _stored_answers(store, keys: list[str]) -> list[str | None]:
    """The stored answer of each key, None when absent. An unusable entry (not text, or pickled)
    is dropped with one warning for all, so it is generated again."""
    out: list[str | None] = [None] * len(keys)
    if store is None:
        return out
    bad, reason = 0, ""
    for i, key in enumerate(keys):
        try:
            value = store.get(key)
            if value is None or isinstance(value, str):
                out[i] = value
                continue
            reason = f"a {type(value).__name__} instead of text"
        except CORRUPT_ERRORS as exc:
            reason = describe(exc)
        bad += 1
        try:
            del store[key]
        except (KeyError, *CORRUPT_ERRORS):
            pass
    if bad:
        warn(f"augment answer store {store.directory}: {bad} stored answer(s) unreadable ({reason}); generating "
             "them again")
    return out


def _store_key(model_id: str, template: str, prompt: str, max_new_tokens: int, system: str | None) -> str:
    payload = json.dumps([STORE_VERSION, model_id, template, prompt, int(max_new_tokens), system])
    return hashlib.sha256(payload.encode()).hexdigest()


def clean(text: str) -> str:
    """One line of generated text: whitespace collapsed, markdown bold/heading marks and wrapping
    quotes removed."""
    text = " ".join(text.replace("**", "").split()).lstrip("# ")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        text = text[1:-1].strip()
    return text


class Generator:
    """A loaded instruct model that answers a batch of prompts greedily."""

    def __init__(self, model: str = DEFAULT_MODEL, max_new_tokens: int = 48, system: str | None = None,
                 loaded: tuple | None = None):
        """`loaded`: an already loaded (model, tokenizer) pair to reuse instead of loading `model`."""
        import torch

        from lego_core.lm.models import load_decoder

        self.torch = torch
        self.model, self.tokenizer = loaded if loaded is not None else load_decoder(model)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device)
        self.max_new_tokens = int(max_new_tokens)
        self.system = system

    def _chat(self, prompt: str) -> str:
        messages = ([{"role": "system", "content": self.system}] if self.system else []) + \
                   [{"role": "user", "content": prompt}]
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return prompt + "\n"

    def __call__(self, prompts: list[str]) -> list[str]:
        tok = self.tokenizer
        tok.padding_side = "left"
        chat = bool(getattr(tok, "chat_template", None))  # the chat template adds its own special tokens
        enc = tok([self._chat(p) for p in prompts], return_tensors="pt", padding=True, add_special_tokens=not chat)
        enc = {k: enc[k].to(self.device) for k in ("input_ids", "attention_mask")}
        with self.torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=tok.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        return [clean(t) for t in tok.batch_decode(new, skip_special_tokens=True)]


def _check_field(dataset: Dataset, field: str) -> None:
    if not isinstance(field, str) or not _FIELD.fullmatch(field):
        raise DataError(f"augment field name {field!r} is not allowed; use letters, digits and _ (e.g. description)")
    if field in dataset.items.columns and field not in dataset.info.get("augmented", []):
        raise DataError(f"augment field {field!r} is already an item column of {dataset.name}; "
                        f"choose a new name such as {field}_gen")


def augment(dataset: Dataset, field: str, template: str, model: str = DEFAULT_MODEL, max_new_tokens: int = 48,
            batch_size: int = 8, limit: int | None = None, system: str | None = None,
            progress: Callable[[int, int], None] | None = None, save: bool = True) -> Dataset:
    """`dataset` with a new item column `field` generated from `template` (e.g. "Describe {title}.")
    by `model` for the first `limit` items (all when None; others get ''). Answers already in
    the store are reused; new ones are stored batch by batch. `progress(done, total)` is called
    after each batch (the app's progress bar). The column is saved as a sidecar when `save`."""
    from tqdm.auto import tqdm

    from lego_core.data.text import item_texts
    from lego_core.lm.models import resolve

    _check_field(dataset, field)
    if int(batch_size) < 1 or int(max_new_tokens) < 1:
        raise DataError("augment batch_size and max_new_tokens must be at least 1")
    prompts = item_texts(dataset, template=template)
    n = len(prompts) if limit is None else max(0, min(int(limit), len(prompts)))
    source = resolve(model)
    model_id = source.signature()
    keys = [_store_key(model_id, template, p, max_new_tokens, system) for p in prompts[:n]]
    store = open_diskcache(cache_dir("augment", "store"), "augment answer store")
    try:
        answers = _stored_answers(store, keys)
        todo = [i for i in range(n) if answers[i] is None]
        done = n - len(todo)
        if progress is not None:
            progress(done, n)
        if todo:
            generate = Generator(model, max_new_tokens, system)
            order = sorted(todo, key=lambda i: len(prompts[i]))  # similar lengths: less padding
            with tqdm(total=len(order), desc=f"augment {field}", unit="item") as bar:
                for start in range(0, len(order), int(batch_size)):
                    batch = order[start:start + int(batch_size)]
                    for i, text in zip(batch, generate([prompts[i] for i in batch])):
                        answers[i] = str(text)
                        if store is not None:
                            store.set(keys[i], answers[i])
                    bar.update(len(batch))
                    done += len(batch)
                    if progress is not None:
                        progress(done, n)
    finally:
        if store is not None:
            store.close()
    values = [a or "" for a in answers] + [""] * (len(prompts) - n)
    items = dataset.items.copy()
    items[field] = np.asarray(values, dtype=object)
    info = {**dataset.info, "augmented": sorted(set(dataset.info.get("augmented", [])) | {field})}
    out = replace(dataset, items=items, info=info)
    if save:
        _save_sidecar(out, field, values)
    return out


def default_template(dataset: Dataset, field: str) -> str | None:
    """The built-in prompt for `field` (see INSTRUCTIONS) followed by the dataset's text fields."""
    if field not in INSTRUCTIONS:
        return None
    from lego_core.data.text import default_fields

    return INSTRUCTIONS[field] + "\n" + " | ".join(f"{{{f}}}" for f in default_fields(dataset))


def cmd_augment(args: argparse.Namespace) -> int:
    """CLI handler: load the dataset, generate the field, print where it went and a few examples."""
    from lego_core import datasets

    dataset = load_augmented(datasets.load(args.dataset))
    template = args.template or default_template(dataset, args.field)
    if not template:
        raise DataError(f"augment needs --template for field {args.field!r} (e.g. \"Describe {{title}} in one "
                        f"sentence.\"); built-in prompts exist for {sorted(INSTRUCTIONS)}")
    start = time.perf_counter()
    out = augment(dataset, args.field, template, model=args.model, max_new_tokens=args.max_new_tokens,
                  batch_size=args.batch_size, limit=args.limit)
    seconds = time.perf_counter() - start
    n = out.num_items if args.limit is None else min(args.limit, out.num_items)
    print(f"{args.field}: {n} items in {seconds:.1f} s -> {_sidecar_dir(out) / (args.field + '.parquet')}")
    for i in range(min(3, n)):
        print(f"  {out.items['item_id'].iloc[i]}: {out.items[args.field].iloc[i]}")
    return 0


def add_augment_command(subparsers) -> argparse.ArgumentParser:
    """Register `augment DATASET --field NAME --template TEXT [--model] [--limit N] [--batch-size]`."""
    p = subparsers.add_parser("augment", help="generate a new item field with a local instruct LLM",
                              description="Generate a new item field from existing ones with a local instruct model; "
                                          "answers are stored, so a repeated or interrupted run resumes.")
    p.add_argument("dataset", help="dataset name or path (see `datasets`)")
    p.add_argument("--field", required=True, help="name of the new item field, e.g. description")
    p.add_argument("--template", help="prompt with item fields in braces, e.g. \"Describe {title} ({genres}).\"; "
                                      f"built-in prompts exist for {', '.join(sorted(INSTRUCTIONS))}")
    p.add_argument("--model", default=DEFAULT_MODEL, help="instruct model: smollm2 (packaged) or a local folder")
    p.add_argument("--limit", type=int, default=None, help="only the first N items")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.set_defaults(func=cmd_augment)
    return p
