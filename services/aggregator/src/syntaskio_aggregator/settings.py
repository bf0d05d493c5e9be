from syntaskio_common.settings import ServiceSettings


class AggregatorSettings(ServiceSettings):
    port: int = 8083
