"""Real documents written by others, run through mdrun: `make corpus` (needs PyPI, so not in
`make test`)."""
