"""Taxonomy definitions shipped with tagger, as data files (installed as tagger_taxonomies)."""
