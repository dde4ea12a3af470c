"""Evaluation of segmentations against references: metrics, tables, statistics and plots."""
