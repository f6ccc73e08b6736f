"""`lm_decoder`: a pretrained causal LLM (default SmolLM2-135M-Instruct, packaged GGUF) as content
operator, trained jointly with the recommender (ONCE/Legommenders style)."""
from __future__ import annotations

from lego_core.lm.models import DEFAULT_DECODER, load_decoder
from lego_core.bricks.lm_base import LMContentOperator, lm_params
from lego_core.bricks.catalog import register


@register("lm_decoder", "content",
          "Pretrained decoder LLM (SmolLM2/Llama-like): item text -> token states -> last-token (or other) pooling "
          "-> projection. Tuning: frozen, top layers, LoRA or full; frozen lower layers come from a layer cache.",
          "Liu et al., ONCE: Boosting Content-based Recommendation with Both Open- and Closed-source LLMs, WSDM 2024",
          lm_params(DEFAULT_DECODER, "last"))
class LMDecoder(LMContentOperator):
    loader = staticmethod(load_decoder)
