"""Tests of mdrun.integrations against the real tools (MkDocs, pre-commit)."""
