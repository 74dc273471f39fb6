"""The offline HTML report of a run."""
