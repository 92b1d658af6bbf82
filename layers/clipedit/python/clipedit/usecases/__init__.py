"""Use cases: what the pipeline does, written against the ports."""
