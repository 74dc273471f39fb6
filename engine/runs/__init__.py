"""Run files: the Arrow schema (the one source of the columns), and reading and writing
run files, journals and verdicts."""
