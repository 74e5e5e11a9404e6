"""Built-in text normalizers (placeholder until they land; registers nothing yet)."""
