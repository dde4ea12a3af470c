"""Evaluation of segmentations against references: metrics, tables, statistics and plots.

A leaf: only the `evaluate` command and scripts import it. What it shares with inference, training and
export (label-map reading, Dice and other mask helpers, the same-grid test) lives in `organseg.ct.labelmaps`,
`organseg.masks` and `organseg.ct.grid`.
"""
