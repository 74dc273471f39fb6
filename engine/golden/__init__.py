"""The golden set: approving a run's candidates as the new baselines, and verifying a
golden folder."""
