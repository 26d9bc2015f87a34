"""Placeholder while the test kit is rebuilt."""
