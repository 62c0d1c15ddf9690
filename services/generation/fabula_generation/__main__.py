"""`python -m fabula_generation`: run the generation gRPC service."""

from fabula_common.grpc_server import serve

from fabula_generation.app import create_app
from fabula_generation.settings import Settings

if __name__ == "__main__":
    serve("generation", Settings, create_app)
