"""Pytest fixtures: placeholder until written."""
