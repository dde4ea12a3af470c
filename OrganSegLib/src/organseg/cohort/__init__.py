"""Many CTs at once: batch runs on this machine, and the same tasks on a Dask or Slurm cluster."""
