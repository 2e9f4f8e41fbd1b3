"""Screens of the terminal UI: live, history (with a run detail view), compare, help."""
