"""Pretrained language models: offline loading (`models`), splitting a model into runnable layer
ranges (`stack`), tuning modes and LoRA (`tuning`), the float16 layer cache (`layer_cache`),
pooling, the shared body of the LM content operators (`operator`), and LLM data generation
(`augment`). Heavy libraries (torch, transformers, peft) load only when these modules are used."""
