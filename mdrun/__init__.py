"""mdrun: run the code blocks of a Markdown document through an immutable, Nix-style store."""

__version__ = "0.1.0"
