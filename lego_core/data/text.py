"""The text of every item, from chosen fields or a template: the item-text builder that content
operators, word tokens and LLM prompts read (`item_texts`)."""
from __future__ import annotations

import string

from lego_core.data.schema import Dataset
from lego_core.core.errors import DataError

SEPARATOR = " | "


def default_fields(dataset: Dataset) -> list[str]:
    """The dataset's text fields, else every column but the id."""
    return list(dataset.text_fields) or [c for c in dataset.items.columns if c != "item_id"]


def _columns(dataset: Dataset, names: list[str], what: str) -> dict[str, list[str]]:
    available = [c for c in dataset.items.columns]
    missing = [n for n in names if n not in available]
    if missing:
        raise DataError(f"{what} names unknown item field(s) {missing}; available fields: {available}")
    return {n: ["" if v is None or v != v else str(v) for v in dataset.items[n].to_numpy(dtype=object)]
            for n in names}


def template_fields(template: str) -> list[str]:
    """Field names a template uses; only plain names are allowed (no attribute/index access)."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise DataError(f"template {template!r} is malformed ({exc}); write fields like {{title}} and "
                        "double braces {{{{ }}}} for literal ones") from None
    names = []
    for _, name, spec, _ in parsed:
        if name is None:
            continue
        if not name.isidentifier() or (spec and "{" in spec):
            raise DataError(f"template field {{{name}}} is not allowed: use plain field names like {{title}}")
        names.append(name)
    return list(dict.fromkeys(names))


def item_texts(dataset: Dataset, fields: list[str] | None = None, template: str | None = None) -> list[str]:
    """One string per item (in item index order): non-empty `fields` joined by ' | ', or
    `template.format_map(item fields)` such as "Title: {title}. Category: {category}."."""
    if template is not None:
        names = template_fields(template)
        cols = _columns(dataset, names, f"template {template!r}")
        try:
            return [template.format_map({n: cols[n][i] for n in names}) for i in range(dataset.num_items)]
        except (ValueError, IndexError) as exc:
            raise DataError(f"template {template!r} cannot be filled ({exc}); use plain fields like {{title}}") from None
    fields = list(fields) if fields else default_fields(dataset)
    if not fields:  # items with nothing but an id
        return [""] * dataset.num_items
    cols = _columns(dataset, fields, "fields")
    rows = zip(*(cols[f] for f in fields))
    return [SEPARATOR.join(v for v in row if v.strip()) for row in rows]
