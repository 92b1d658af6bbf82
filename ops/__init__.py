"""Operator commands for a clipedit stack (deployed or local): reconcile jobs, inspect and redrive
the dead-letter queue. Run as ``python -m ops ...`` (``make ops ARGS=...``). Not part of the layer."""
