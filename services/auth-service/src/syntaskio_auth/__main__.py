from syntaskio_auth.app import create_app
from syntaskio_auth.settings import AuthSettings
from syntaskio_common.serving import serve


def main() -> None:
    serve("auth-service", AuthSettings(), create_app)


if __name__ == "__main__":
    main()
