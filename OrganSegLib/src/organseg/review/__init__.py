"""`organseg review`: check and correct results in the browser, on Slicer's own views and segment editor
(trame-slicer, the `[web]` extra).

`cases` and `corrections` need only the library (they find the cases and write the corrections, and are tested
without a browser); `scene` needs slicer-core and `app` trame-slicer, both imported only when the app starts.
"""
