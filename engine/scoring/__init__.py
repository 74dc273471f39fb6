"""Scoring: pairing -> decode workers -> device batches -> metrics (LPIPS, kernels) ->
rows, and the backends (local, Ray) that run it under one run lifecycle."""
