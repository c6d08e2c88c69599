"""Start bqemulator offline on 127.0.0.1 and print its REST port: `python -m tests.fakes.bq_launcher`.

bqemulator 1.4.0 as shipped cannot start on a machine without internet: it INSTALLs DuckDB's
`spatial` extension at startup (and tries `avro`). It also refuses every load under 5 MiB,
because google-cloud-bigquery sends those as a multipart upload whose media part is `*/*`. This
launcher patches both before starting: GEOGRAPHY and Avro are then unsupported, which cashmatch
never uses. It runs in its own process so the emulator's logging setup, event loop and DuckDB
stay out of the test process.

Prints one line `READY <rest port> <grpc port>` on stdout once listening; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys


def _patch_for_offline_use() -> None:
    from bqemulator.api.routes import upload
    from bqemulator.storage.engine import DuckDBEngine

    DuckDBEngine._load_spatial = lambda self: None  # type: ignore[method-assign]
    DuckDBEngine._load_format_extensions = lambda self: None  # type: ignore[method-assign]
    upload._PERMITTED_MEDIA_CONTENT_TYPES = (  # type: ignore[assignment]
        *upload._PERMITTED_MEDIA_CONTENT_TYPES,
        "*/*",
    )


async def _serve(project: str) -> None:
    from bqemulator.config import LogLevel, PersistenceMode, Settings
    from bqemulator.server import EmulatorServer

    settings = Settings(
        persistence_mode=PersistenceMode.EPHEMERAL,
        rest_host="127.0.0.1",
        rest_port=0,
        grpc_host="127.0.0.1",
        grpc_port=0,
        default_project_id=project,
        log_level=LogLevel.WARNING,
        metrics_enabled=False,
        enable_format_extensions=False,
    )
    server = EmulatorServer(settings)
    await server.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    sys.stdout.write(f"READY {server.rest_port} {server.grpc_port}\n")
    sys.stdout.flush()
    try:
        await stop.wait()
    finally:
        await server.stop()


def main() -> None:
    """Patch, start, report the ports, serve until SIGTERM."""
    logging.basicConfig(level=logging.WARNING)
    _patch_for_offline_use()
    asyncio.run(_serve(sys.argv[1] if len(sys.argv) > 1 else "test-project"))


if __name__ == "__main__":
    main()
