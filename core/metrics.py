"""Prometheus metrics of every meterline process, and the pipeline-wide series the API adds.

Per-process series are plain prometheus_client metrics in the default registry. Pipeline-wide
series (consumer lag, events applied / deduplicated / rejected across all aggregator workers) are
computed by `PipelineMonitor` from Kafka offsets and from the totals the aggregators keep in the
Redis hash `ml:stats`, so one scrape of the API shows the whole pipeline.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from prometheus_client import Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.lag import LagSample

log = logging.getLogger("meterline.metrics")
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
STATS_KEY = "ml:stats"  # Redis hash: applied, deduplicated, rejected:<reason>, alerts_*, biller_* fields
RECENT_ALERTS_KEY = "ml:alerts:recent"  # Redis list: the last RECENT_ALERTS alerts and thresholds fired, as JSON
RECENT_ALERTS = 20

INGEST_REQUESTS = Counter("meterline_ingest_requests_total", "Event intake requests by endpoint and status",
                          ["endpoint", "status"])
INGEST_EVENTS = Counter("meterline_ingest_events_accepted_total",
                        "Events acknowledged by Kafka and answered 200 by this process")
INGEST_LATENCY = Histogram("meterline_ingest_request_seconds", "Event intake request duration",
                           ["endpoint"], buckets=LATENCY_BUCKETS)
KAFKA_ACK_LATENCY = Histogram("meterline_kafka_ack_seconds", "Produce to acknowledgement of a request's events",
                              buckets=LATENCY_BUCKETS)

AGGREGATOR_EVENTS = Counter("meterline_aggregator_events_total",
                            "Events handled by this aggregator worker by outcome", ["outcome", "reason"])
AGGREGATOR_BATCH_SIZE = Histogram("meterline_aggregator_batch_size", "Events per processed batch",
                                  buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 20000))
AGGREGATOR_APPLY_LATENCY = Histogram("meterline_aggregator_batch_seconds",
                                     "Processing time of one batch (Redis, archive, rejects)",
                                     buckets=LATENCY_BUCKETS)
EVENT_TO_VISIBLE = Histogram("meterline_event_to_visible_seconds",
                             "From acceptance at the ingest to visible in current usage",
                             buckets=LATENCY_BUCKETS)
ALERTS_EVALUATED = Counter("meterline_alerts_evaluated_total",
                           "Alerts and progressive billing threshold sets compared with a new usage value")
ALERTS_FIRED = Counter("meterline_alerts_fired_total",
                       "Alerts triggered and progressive billing thresholds reached by this alerts worker")
ALERT_EVALUATION_SECONDS = Histogram("meterline_alert_evaluation_seconds",
                                     "Evaluating the alerts and thresholds of the subscriptions some batches touched",
                                     buckets=LATENCY_BUCKETS)

BILLER_RUNS = Counter("meterline_biller_runs_total", "Billing runs completed")
INVOICES_WRITTEN = Counter("meterline_invoices_written_total", "Invoices written by the biller")
WEBHOOK_DELIVERIES = Counter("meterline_webhook_deliveries_total", "Webhook delivery attempts by outcome",
                             ["outcome"])


def pipeline_families(lag: LagSample | None, stats: Mapping[str, int],
                      alerts_lag: LagSample | None = None) -> Iterable[Metric]:
    """Pure: the pipeline-wide metric families from a lag sample of the aggregators (on the events topic), one
    of the alerts workers (on the touched pairs), and the `ml:stats` totals."""
    if lag is not None:
        gauge = GaugeMetricFamily("meterline_consumer_lag", "Committed offset behind the high watermark",
                                  labels=["group", "topic", "partition"])
        end = GaugeMetricFamily("meterline_topic_end_offset", "High watermark of the events topic",
                                labels=["topic", "partition"])
        for partition in lag.partitions:
            gauge.add_metric([lag.group, partition.topic, str(partition.partition)], partition.lag)
            end.add_metric([partition.topic, str(partition.partition)], partition.end)
        for partition in alerts_lag.partitions if alerts_lag else ():
            gauge.add_metric([alerts_lag.group, partition.topic, str(partition.partition)],  # type: ignore[union-attr]
                             partition.lag)
        yield gauge
        yield end
        accepted = CounterMetricFamily("meterline_pipeline_events_accepted",
                                       "Events accepted into the events topic (sum of end offsets)")
        accepted.add_metric([], lag.total_end)
        yield accepted
    events = CounterMetricFamily("meterline_pipeline_events", "Events handled by all aggregator workers",
                                 labels=["outcome", "reason"])
    events.add_metric(["applied", ""], stats.get("applied", 0))
    events.add_metric(["deduplicated", ""], stats.get("deduplicated", 0))
    for field, value in sorted(stats.items()):
        if field.startswith("rejected:"):
            events.add_metric(["rejected", field.split(":", 1)[1]], value)
    yield events
    alerts = CounterMetricFamily("meterline_pipeline_alerts", "Alert and progressive billing evaluations by all "
                                 "alerts workers, and what they fired", labels=["outcome"])
    alerts.add_metric(["evaluated"], stats.get("alerts_evaluated", 0))
    alerts.add_metric(["fired"], stats.get("alerts_fired", 0))
    yield alerts


class PipelineCollector(Collector):
    """Adapts the API's PipelineMonitor snapshot to a prometheus_client collector."""

    def __init__(self, snapshot):  # type: ignore[no-untyped-def]
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return pipeline_families(*self._snapshot())


def serve_metrics(host: str, port: int) -> None:
    """`/metrics` of a process without an HTTP server of its own (aggregator, alerts, biller). Port 0 disables it;
    a port already taken (a second worker on one machine) is logged, never fatal."""
    if port == 0:
        return
    try:
        start_http_server(port, addr=host)
    except OSError as exc:
        log.warning("metrics server not started on %s:%d: %s", host, port, exc)
