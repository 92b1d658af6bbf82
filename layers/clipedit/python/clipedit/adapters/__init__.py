"""Adapters: the ports implemented for AWS services and the Kling HTTP API."""
