"""Importing public labelled CT data sets (TotalSegmentator, nnU-Net raw / MSD) into a training dataset CSV."""
