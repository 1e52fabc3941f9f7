"""Modal screens: help, and the operator's editors."""
