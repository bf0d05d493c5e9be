from syntaskio_common.settings import ServiceSettings


class AggregatorSettings(ServiceSettings):
    port: int = 8083
    # Raw records applied per bulk write: larger batches amortise the database's
    # per-request cost; the whole batch is redone after a crash.
    batch_size: int = 500
    # Consumers of the raw topic in this process, each owning some of its partitions:
    # while one batch waits on the database, another is decoded and announced. More than
    # the topic has partitions would sit idle.
    consumers: int = 1
    # How long a removed task is kept as a tombstone, refusing late older events; must
    # outlast the raw topic's retention and any redelivery delay.
    tombstone_retention_days: int = 14
