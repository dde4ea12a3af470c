"""Sub-commands of the `organseg` command line."""
