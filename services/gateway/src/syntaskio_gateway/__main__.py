from syntaskio_common.serving import serve
from syntaskio_gateway.app import create_app
from syntaskio_gateway.settings import GatewaySettings


def main() -> None:
    serve("gateway", GatewaySettings(), create_app)


if __name__ == "__main__":
    main()
