"""Where users already work: the MkDocs plugin and the pre-commit hooks' entry points."""
