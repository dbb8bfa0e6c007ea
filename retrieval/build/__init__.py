"""Offline model builds: the exported embedder and the answer verifier's training data, training and evaluation.
"""
