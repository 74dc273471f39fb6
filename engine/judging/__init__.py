"""Judging a run: TOML policies and the gate. Needs no torch and no GPU: any CI box can
judge a run file."""
