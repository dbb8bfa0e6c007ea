"""Base helpers every package may use: redaction, JSON logging and SQL helpers.
"""
