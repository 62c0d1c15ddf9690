"""`python -m fabula_stories`: run the stories gRPC service."""

from fabula_common.grpc_server import serve

from fabula_stories.app import create_app
from fabula_stories.settings import Settings

if __name__ == "__main__":
    serve("stories", Settings, create_app)
