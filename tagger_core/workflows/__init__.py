"""Workflows that drive taggers: train and save, evaluate and write every output, choose
the decision rule, cross-validate, compare labelling sources. Each is the one function
that both the CLI and the Python API call; they sit above :mod:`tagger_core.tagger`."""
