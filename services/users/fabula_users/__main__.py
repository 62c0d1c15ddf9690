"""`python -m fabula_users`: run the users gRPC service."""

from fabula_common.grpc_server import serve

from fabula_users.app import create_app
from fabula_users.settings import Settings

if __name__ == "__main__":
    serve("users", Settings, create_app)
