"""Sub-commands of the `organseg` command line: one module per sub-command, each with `register(subparsers)`.

A sub-command parses its arguments, calls the library and prints; the options several share live in
`options`, and no sub-command imports another.
"""
