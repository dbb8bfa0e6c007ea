"""The evaluation bench: eval sets, metrics and reports."""
