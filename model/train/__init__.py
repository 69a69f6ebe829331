"""Training recipes: corpus, tokenizer, pretraining and Codex-S-style fine-tuning (heavy tier)."""
