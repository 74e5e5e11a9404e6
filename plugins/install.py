"""`tagger install` / `tagger uninstall` (placeholder until they land; registers nothing yet)."""
