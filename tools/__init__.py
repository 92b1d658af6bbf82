"""Operator tools that run the use cases against a deployed or local stack."""
