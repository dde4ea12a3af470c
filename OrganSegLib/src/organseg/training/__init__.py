"""Training one organ's network from labelled CT (same pre-processing as inference)."""
