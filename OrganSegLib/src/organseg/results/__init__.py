"""Results: the masks and label map of a run, their statistics and plausibility flags, and the output folder
they are written to."""
