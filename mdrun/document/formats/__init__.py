"""Format readers: each turns its own conventions (Markdown, Quarto and R Markdown, MyST
notebooks, doctest sessions) into the one `Cell` value the pipeline knows."""
