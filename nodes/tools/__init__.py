"""Tooling that ships with Tierwise but is not on the service's request path.

These modules run from the command line (``tierwise lint-make``) or in tests; nothing in the HTTP app,
the pipeline or the workers imports them.
"""
