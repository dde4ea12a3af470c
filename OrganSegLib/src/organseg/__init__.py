"""OrganSeg: per-organ CT segmentation with light 2D Res-UNets."""
__version__ = "0.1.0"
