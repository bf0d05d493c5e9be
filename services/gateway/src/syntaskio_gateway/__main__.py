from starlette.middleware import Middleware

from syntaskio_common.serving import serve
from syntaskio_gateway.app import create_app
from syntaskio_gateway.flood_guard import FloodGuard
from syntaskio_gateway.settings import GatewaySettings


def main() -> None:
    settings = GatewaySettings()
    serve("gateway", settings, create_app, front=[Middleware(FloodGuard, settings=settings)])


if __name__ == "__main__":
    main()
