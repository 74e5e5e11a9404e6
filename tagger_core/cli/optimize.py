"""`tagger optimize` (to come: choose and fit the decision rule on validation data)."""
