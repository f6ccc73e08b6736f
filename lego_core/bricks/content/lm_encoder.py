"""`lm_encoder`: a pretrained BERT-like encoder (default all-MiniLM-L6-v2, packaged) as content
operator, trained jointly with the recommender (PLM-NR style)."""
from __future__ import annotations

from lego_core.lm.models import DEFAULT_ENCODER, load_encoder
from lego_core.bricks.lm_base import LMContentOperator, lm_params
from lego_core.bricks.catalog import register


@register("lm_encoder", "content",
          "Pretrained language-model encoder (MiniLM/BERT): item text -> token states -> pooling -> projection. "
          "Tuning: frozen, top layers, LoRA or full; frozen lower layers are served from a float16 layer cache.",
          "Wu et al., Empowering News Recommendation with Pre-trained Language Models (PLM-NR), SIGIR 2021",
          lm_params(DEFAULT_ENCODER, "mean"))
class LMEncoder(LMContentOperator):
    loader = staticmethod(load_encoder)
