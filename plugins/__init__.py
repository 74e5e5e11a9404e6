"""tagger's built-in plugins, installed as ``tagger_plugins``.

Each module is registered through the ``tagger`` entry-point group, exactly like a
third-party plugin; the core never imports these modules by name.
"""
