"""Serving models: the local endpoint (inference container, front router, data capture)."""
