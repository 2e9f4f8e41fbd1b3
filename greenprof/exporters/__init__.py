"""greenprof.exporters."""
