"""The web console at ``/console``: static files only; every screen's data comes from ``/v1`` (docs/console.md)."""
