"""The evaluator: parse a Markdown document, run its blocks in kernels, render their outputs."""
