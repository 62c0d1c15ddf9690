"""The demo web app at /app: plain static files, only the public API."""
