"""Capture, replay and canary: outputs of two generators side by side, and the demo
engine that stands in for a generator."""
