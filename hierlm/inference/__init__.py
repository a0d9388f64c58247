"""Inference and model comparison: LRTs, information criteria, denominator df, intervals, bootstrap."""
