"""The per-user mdrun server: one-shot `run` and `check` answered by a warm process.

`client` is the `mdrun` console script (standard library only until it has decided where the
command runs); `daemon` is the server; `protocol` is what they say to each other over a Unix
socket; `address` is where that socket lives; `settings` whether to use it at all.
"""
