"""Fabula media service."""
