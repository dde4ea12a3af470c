"""Slicer-side code of the OrganSeg module that needs no Qt: MRML conversions, segments, table, logic.

Everything here runs inside 3D Slicer and, for tests, on the `slicer-core` package (MRML without the app).
"""
