"""Fabula gateway: the public REST API in front of the gRPC services."""
