"""`qr-collector run`: the service (systemd: Type=notify with a watchdog)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from types import FrameType

from collector.amqp import AmqpCollector
from collector.commands import EXIT_CONFIG, add_config_argument, load_or_explain, start_logging
from collector.ingest import Collector
from collector.metrics import Metrics
from device.errors import ConfigError
from device.notify import Notifier


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_argument(parser)


def main(args: argparse.Namespace) -> int:
    settings = load_or_explain(args.config)
    if settings is None:
        return EXIT_CONFIG
    start_logging(settings)
    metrics = Metrics()
    try:
        kind = AmqpCollector if settings.amqp.urls else Collector
        collector = kind(settings, metrics=metrics, notifier=Notifier.from_env())
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_CONFIG

    def stop(signum: int, _frame: FrameType | None) -> None:
        logging.getLogger(__name__).info("stopping (%s)", signal.Signals(signum).name)
        collector.stop()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if settings.metrics.port:
        metrics.serve(settings.metrics.host, settings.metrics.port)
    collector.run()
    return 0
