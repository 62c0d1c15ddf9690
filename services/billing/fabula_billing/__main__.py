"""`python -m fabula_billing`: run the billing gRPC service."""

from fabula_common.grpc_server import serve

from fabula_billing.app import create_app
from fabula_billing.settings import Settings

if __name__ == "__main__":
    serve("billing", Settings, create_app)
