from syntaskio_aggregator.app import create_app
from syntaskio_aggregator.settings import AggregatorSettings
from syntaskio_common.serving import serve


def main() -> None:
    serve("aggregator", AggregatorSettings(), create_app)


if __name__ == "__main__":
    main()
