"""Shared kernel: the error tree, queue IDs and the injectable clock."""
