"""Pretrained language models as a library: offline loading (`models`), splitting a model into
runnable layer ranges (`stack`), tuning modes and LoRA (`tuning`), the float16 layer cache
(`layer_cache`), pooling, token states over a list of texts (`states`, the body of the LM content
bricks in lego_core.operators) and LLM data generation (`augment`). It imports nothing above
lego_core.data, devices, paths, fileio and errors. Heavy libraries (torch, transformers, peft) load
only when these modules are used."""
