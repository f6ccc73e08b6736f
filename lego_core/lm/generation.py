"""LLM as data generator: write a new item field (a description, keywords, a better title) from the
existing fields with a local instruct model (default SmolLM2-135M-Instruct).

Each item's prompt is an editable template filled from its fields (`{title}`, `{genres}`, ...)
and wrapped in the model's chat template; generation is greedy and batched (left padding). Every
answer goes into a diskcache store under `cache_dir("augment", "store")` keyed by (model, template,
prompt text, generation settings) as soon as its batch finishes, so an interrupted run resumes
where it stopped and a repeated run is served from the store. The new column is saved through
`lego_core.data.generated` (the sidecars and `load_augmented`); the `augment` CLI command lives in
`lego_core.cli.augment`.
"""
from __future__ import annotations

import hashlib
import importlib
import json
import os
from collections.abc import Callable

from lego_core.core import devices
from lego_core.data import generated
from lego_core.data.cache import CORRUPT_ERRORS, describe, open_diskcache
from lego_core.data.io import warn
from lego_core.data.schema import Dataset
from lego_core.data.text import SEPARATOR, default_fields, item_texts
from lego_core.core.errors import DataError
from lego_core.core.paths import cache_dir
from lego_core.core.progress import redraw_seconds

STORE_VERSION = 1
DEFAULT_MODEL = "smollm2"
PREVIEW_ITEMS = 5
# Test hook: "module:attr" of a class used instead of `Generator` (same call signature), so tests
# can run the background job (`lego_core.jobs.generation`) with a stub instead of the LLM.
GENERATOR_ENV = "LEGO_AUGMENT_GENERATOR"
INSTRUCTIONS = {  # built-in prompts by field name; the item's text fields are appended
    "description": "Describe this item in one short sentence.",
    "keywords": "List five comma-separated keywords for this item.",
    "better_title": "Rewrite this title to be more informative, in at most ten words.",
}


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
        self.device = torch.device(devices.resolve("auto"))
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


def augment(dataset: Dataset, field: str, template: str, model: str = DEFAULT_MODEL, max_new_tokens: int = 48,
            batch_size: int = 8, limit: int | None = None, system: str | None = None,
            progress: Callable[[int, int], None] | None = None, save: bool = True) -> Dataset:
    """`dataset` with a new item column `field` generated from `template` (e.g. "Describe {title}.")
    by `model` for the first `limit` items (all when None; others get ''). Answers already in
    the store are reused; new ones are stored batch by batch. `progress(done, total)` is called
    after each batch (the app's progress bar). The column is saved as a sidecar when `save`."""
    from tqdm.auto import tqdm

    from lego_core.lm.models import resolve

    generated.check_field(dataset, field)
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
            generate = _generator_class()(model, max_new_tokens, system)
            order = sorted(todo, key=lambda i: len(prompts[i]))  # similar lengths: less padding
            with tqdm(total=len(order), desc=f"augment {field}", unit="item", mininterval=redraw_seconds()) as bar:
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
    out = generated.with_field(dataset, field, values)
    if save:
        generated.save_field(out, field, values)
    return out


def _generator_class() -> type:
    """`Generator`, or the class named by $LEGO_AUGMENT_GENERATOR (the test hook above)."""
    spec = os.environ.get(GENERATOR_ENV, "").strip()
    if not spec:
        return Generator
    module, _, attr = spec.partition(":")
    return getattr(importlib.import_module(module), attr or "Generator")


def preview(dataset: Dataset, field: str, template: str, model: str = DEFAULT_MODEL, max_new_tokens: int = 48,
            n: int = PREVIEW_ITEMS, system: str | None = None) -> list[dict]:
    """The first `n` items' prompt and generated text ({item_id, prompt, field: text}), generated in
    this process: a quick look before the whole field is generated in the background. The answers
    go into the store (the full run reuses them); no sidecar is saved."""
    out = augment(dataset, field, template, model=model, max_new_tokens=max_new_tokens, batch_size=max(1, n),
                  limit=n, system=system, save=False)
    prompts = item_texts(dataset, template=template)[:n]
    ids = dataset.items["item_id"].astype(str).tolist()[:n]
    return [{"item_id": i, "prompt": p, field: t} for i, p, t in zip(ids, prompts, out.items[field].tolist())]


def default_template(dataset: Dataset, field: str) -> str | None:
    """The built-in prompt for `field` (see INSTRUCTIONS) followed by the dataset's text fields."""
    if field not in INSTRUCTIONS:
        return None
    return INSTRUCTIONS[field] + "\n" + SEPARATOR.join(f"{{{f}}}" for f in default_fields(dataset))
