"""A TLS front for the embedded broker, for tests of the services' secured Kafka clients.

The embedded broker (Tansu 0.6) takes `--cert` but does not serve TLS with it, so a TLS
stack puts this in front: it accepts TLS connections (its server certificate from our
test CA; with `--client-ca`, only clients whose certificate that CA signed, as a broker
with `ssl.client.auth=required` would) and relays the bytes to the broker's plaintext
listener, which advertises this proxy's address. Everything Kafka-level is the broker's.

Run: `python -m syntaskio_devstack.tls_proxy --port N --upstream 127.0.0.1:M
--cert server.crt --key server.key [--client-ca ca.crt]`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ssl


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(ConnectionError, ssl.SSLError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    with contextlib.suppress(ConnectionError, ssl.SSLError, OSError):
        writer.close()


async def serve(port: int, upstream: str, context: ssl.SSLContext) -> None:
    host, _, upstream_port = upstream.rpartition(":")

    async def relay(
        client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter
    ) -> None:
        try:
            broker_reader, broker_writer = await asyncio.open_connection(host, int(upstream_port))
        except OSError:
            client_writer.close()
            return
        await asyncio.gather(
            _pipe(client_reader, broker_writer), _pipe(broker_reader, client_writer)
        )

    server = await asyncio.start_server(relay, "127.0.0.1", port, ssl=context)
    async with server:
        await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(prog="tls_proxy", description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", required=True, help="the broker's host:port")
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--client-ca", help="require client certificates signed by this CA")
    args = parser.parse_args()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.cert, args.key)
    if args.client_ca:
        context.verify_mode = ssl.CERT_REQUIRED
        context.load_verify_locations(args.client_ca)
    asyncio.run(serve(args.port, args.upstream, context))


if __name__ == "__main__":
    main()
