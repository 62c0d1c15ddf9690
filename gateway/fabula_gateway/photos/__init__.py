"""Photos (media's MediaService): direct uploads, processing status, download
URLs; and the signed local-storage transfer routes."""
