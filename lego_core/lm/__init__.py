"""Pretrained language models as a library: offline loading (`models`), splitting a model into
runnable layer ranges (`stack`), tuning modes and LoRA (`tuning`), the float16 layer cache
(`layer_cache`), pooling, token states over a list of texts (`states`, the body of the LM content
bricks in lego_core.bricks) and LLM data generation (`augment`). May import core and
data only. Heavy libraries (torch, transformers, peft) load
only when these modules are used."""
