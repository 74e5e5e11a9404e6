"""BERT-Chinese encoder (placeholder until the encoder lands; registers nothing yet)."""
