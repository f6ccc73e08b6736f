"""Dataset readers, the shared schema, synthetic data and tokenizers."""
