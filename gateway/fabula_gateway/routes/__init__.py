"""The public routes, one module per tag."""
