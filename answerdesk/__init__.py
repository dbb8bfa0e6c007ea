"""AnswerDesk: a multilingual answer engine for customer support.

This package holds only the command-line entry point that wires the others together.
"""

__version__ = "0.1.0"
