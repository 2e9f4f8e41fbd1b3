"""greenprof.hooks."""
