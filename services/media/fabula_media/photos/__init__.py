"""Photos: created pending, uploaded straight to storage, processed by the
worker (verified, metadata stripped, thumbnails), completed or failed."""
