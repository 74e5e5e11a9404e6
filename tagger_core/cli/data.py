"""Data-workflow commands (to come: validate, split, compare, cv)."""
