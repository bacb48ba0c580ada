"""Long-running commands: the demo, the webhook receiver and the metrics server."""

import os
import sys
from pathlib import Path

import click

from skillmeat_pipeline.cli.output import fail
from skillmeat_pipeline.lib.catalog.store import Catalog

# -- demo -----------------------------------------------------------------------------------------


@click.command(short_help="The pipeline end to end on sample repositories.")
@click.option(
    "--dir",
    "directory",
    default=".demo",
    show_default=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the repositories, catalog and Dagster instance; rebuilt on every run.",
)
@click.option(
    "--serve",
    is_flag=True,
    help="Then keep the servers up and run the Dagster UI (dagster dev) until Ctrl-C.",
)
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI (--serve).")
def demo(directory: Path, serve: bool, port: int) -> None:
    """Run the pipeline end to end on sample repositories: no set-up, no network.

    Builds five sample marketplace repositories (skills, agents, commands, hooks, MCP servers,
    plugins), serves them on loopback with a git server and a GitHub API emulator, writes a
    sources file, syncs the partitions and materializes marketplace_index in a Dagster instance
    under DIR/dagster_home, twice (the second time after a push to one repository). Prints what
    each partition's metadata says: strategy, artifacts, REST calls and durations.

    \b
    Examples:
      skillmeat-pipeline demo
      skillmeat-pipeline demo --serve              # then open http://127.0.0.1:3000
      skillmeat-pipeline demo --serve --port 3333 --dir /tmp/skillmeat-demo
    """
    from skillmeat_pipeline.demo import DemoError, run_demo

    try:
        code = run_demo(directory, serve=serve, port=port, echo=click.echo)
    except DemoError as exc:
        fail(str(exc))
    sys.exit(code)


# -- webhook-server -------------------------------------------------------------------------------


@click.command("webhook-server", short_help="Receive GitHub push webhooks into the catalog.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8090, show_default=True, help="Port (0: any free port).")
@click.option("--path", "hook_path", default="/webhook", show_default=True, help="Hook URL path.")
@click.option(
    "--max-body-bytes",
    default=5 * 1024 * 1024,
    show_default=True,
    help="Larger deliveries are refused with 413.",
)
@click.option(
    "--max-connections-per-client",
    default=4,
    show_default=True,
    help="Connections one address may hold of the 16 (more get 503); behind a reverse proxy, 16.",
)
def webhook_server(
    host: str, port: int, hook_path: str, max_body_bytes: int, max_connections_per_client: int
) -> None:
    """Receive GitHub `push` webhooks and store them for the `push_events_sensor`.

    The secret configured on the GitHub webhook comes from SKILLMEAT_WEBHOOK_SECRET; every
    delivery must carry a valid X-Hub-Signature-256 (401 otherwise). Accepted pushes are stored in
    the catalog database (SKILLMEAT_INDEX_URL); a redelivery of the same X-GitHub-Delivery is
    ignored; a repository that is no source gets 404. Headers must arrive within 10 s, a body
    within 30 s, and one address holds at most --max-connections-per-client connections, so slow
    or greedy clients cannot keep deliveries out. Runs until SIGTERM or Ctrl-C.

    \b
    Example:
      export SKILLMEAT_WEBHOOK_SECRET=...   # the secret set on the GitHub webhook
      skillmeat-pipeline webhook-server --host 0.0.0.0 --port 8090
      # GitHub: Payload URL http://HOST:8090/webhook, content type application/json
    """
    import signal
    import threading

    from skillmeat_pipeline.lib.services.webhooks import (
        WebhookReceiver,
        WebhookServer,
        secret_from_env,
    )

    try:
        secret = secret_from_env()
    except ValueError as exc:
        fail(str(exc))
    catalog = Catalog.from_env()
    catalog.migrate()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    receiver = WebhookReceiver(catalog, secret, max_body_bytes=max_body_bytes)
    try:
        server = WebhookServer(
            receiver,
            host=host,
            port=port,
            path=hook_path,
            max_connections_per_client=max_connections_per_client,
        ).start()
    except (OSError, ValueError) as exc:
        catalog.dispose()
        fail(f"cannot listen on {host}:{port}: {exc}")
    click.echo(f"listening on {server.url}")
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        server.stop()
        catalog.dispose()
    click.echo("webhook server stopped")


# -- metrics-server -------------------------------------------------------------------------------


@click.command("metrics-server")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=9464, show_default=True, help="Port (0: any free port).")
@click.option(
    "--log-format",
    type=click.Choice(["json", "text"]),
    help="Log lines on stderr as JSON or text (default: SKILLMEAT_LOG_FORMAT, else text).",
)
def metrics_server(host: str, port: int, log_format: str | None) -> None:
    """Serve the pipeline's metrics to Prometheus at /metrics, one place for every run.

    Run workers live for one run, too short to be scraped. When a run ends, its worker pushes the
    run's metrics here over OTLP/HTTP (POST /v1/metrics) and this process adds them up: scrape this
    one process, never the workers. Point the workers at it with
    OTEL_EXPORTER_OTLP_METRICS_ENDPOINT=http://HOST:PORT/v1/metrics. Totals restart at zero when
    this server restarts, which Prometheus's rate() and increase() handle as a counter reset.

    \b
    Examples:
      skillmeat-pipeline metrics-server --port 9464
      # prometheus.yml: - job_name: skillmeat
      #                   static_configs: [{targets: ["HOST:9464"]}]
    """
    import signal
    import threading

    from skillmeat_pipeline.lib.observability.logs import configure_logging
    from skillmeat_pipeline.lib.services.metrics_server import MetricsServer

    configure_logging(log_format or os.environ.get("SKILLMEAT_LOG_FORMAT") or "text")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        server = MetricsServer(host, port).start()
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc}")
    click.echo(
        f"serving Prometheus metrics on {server.url}; "
        f"run workers push OTLP metrics to {server.otlp_url}"
    )
    sys.stdout.flush()
    try:
        stop.wait()
    finally:
        server.stop()
    click.echo("metrics server stopped")
