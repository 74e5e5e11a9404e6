"""`tagger serve`: taggers behind an HTTP API and a review page.

Above the workflows, below the CLI: the app scores through the same :class:`Tagger` and
streaming readers and writers as the commands do; FastAPI and uvicorn come from the
``serve`` extra and load only here.
"""
