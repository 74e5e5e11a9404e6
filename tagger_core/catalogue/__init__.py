"""Tagging a whole catalogue: shards in, shards out, scored on Ray Data's actor pools
(`tagger predict --engine ray`), or inside another pipeline through :class:`TagBatches`.
Ray is the ``ray`` extra; nothing here imports it until a job runs on it."""

from tagger_core.catalogue.batches import TagBatches

__all__ = ["TagBatches"]
