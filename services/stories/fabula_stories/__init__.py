"""Fabula stories service: stories and their segments, written with the generation service."""
