from syntaskio_common.serving import serve
from syntaskio_connector.app import create_app
from syntaskio_connector.settings import ConnectorSettings


def main() -> None:
    serve("connector-connectwise", ConnectorSettings(), create_app)


if __name__ == "__main__":
    main()
