"""`python -m fabula_media`: run the media gRPC service."""

from fabula_common.grpc_server import serve

from fabula_media.app import create_app
from fabula_media.settings import Settings

if __name__ == "__main__":
    serve("media", Settings, create_app)
