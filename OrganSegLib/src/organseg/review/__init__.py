"""`organseg review`: check and correct results in the browser, on Slicer's own views and segment editor
(trame-slicer, the `[web]` extra).

`cases` and `corrections` need only the library (they find the cases and write the corrections), and so does
`segment_ct` (segmenting a CT without results from the page); `scene` and `session` need slicer-core, `app`
trame-slicer; `organseg review` imports those only when it starts the page.
"""
