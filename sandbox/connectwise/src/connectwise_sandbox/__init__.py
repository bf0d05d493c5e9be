"""A faithful ConnectWise Manage (PSA) REST API simulator for development, demos, tests
and benchmarks. Never shipped to production."""

from connectwise_sandbox.app import create_app
from connectwise_sandbox.settings import DEV_CLIENT_ID, Settings

__all__ = ["DEV_CLIENT_ID", "Settings", "create_app"]
