"""greenprof.tui."""
