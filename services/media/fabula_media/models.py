"""Every table of the media schema, for Alembic."""

from fabula_media.database import Base, outbox, processed_events  # noqa: F401
from fabula_media.photos.models import Photo, Rendition  # noqa: F401
