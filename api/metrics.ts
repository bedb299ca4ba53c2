import type { EventHubStats } from "./event_hub.ts";
import { createHistogram, type Histogram, observe } from "../histogram.ts";
import { INGEST_DESCRIPTIONS, type IngestSnapshot } from "./ingest_stats.ts";
import type { AnswerSource } from "./read_cache/mod.ts";

/** Upper bounds of the HTTP request duration histogram, in seconds. */
export const HTTP_DURATION_BUCKETS = [
  0.0005,
  0.001,
  0.0025,
  0.005,
  0.01,
  0.025,
  0.05,
  0.1,
  0.25,
  0.5,
  1,
  2.5,
  5,
  10,
];

/** Request durations by method, route pattern and status, in Prometheus text format. */
export interface HttpMetrics {
  observe(labels: { method: string; route: string; status: number }, seconds: number): void;
  render(): string;
}

export function createHttpMetrics(buckets: number[] = HTTP_DURATION_BUCKETS): HttpMetrics {
  const series = new Map<string, { labels: Record<string, string>; histogram: Histogram }>();
  return {
    observe({ method, route, status }, seconds) {
      const key = `${method} ${route} ${status}`;
      let entry = series.get(key);
      if (!entry) {
        const histogram = createHistogram(buckets);
        entry = { labels: { method, route, status: String(status) }, histogram };
        series.set(key, entry);
      }
      observe(entry.histogram, seconds);
    },
    render() {
      const name = "scorestream_http_request_duration_seconds";
      let text = header(name, "histogram", "HTTP request durations by route pattern.");
      for (const { labels, histogram } of series.values()) {
        text += histogramLines(name, labels, histogram);
      }
      return text;
    },
  };
}

/** The ingest side's counters, gauges and histograms in Prometheus text format. */
export function renderIngestMetrics(s: IngestSnapshot): string {
  const p = "scorestream_ingest_";
  let text = "";
  const metric = (name: string, type: string, help: string, lines: string) => {
    text += header(name, type, help) + lines;
  };
  /** A metric of one sample. */
  const single = (
    name: string,
    type: string,
    help: string,
    value: number,
    labels: Record<string, string> = {},
  ) => metric(name, type, help, sample(name, labels, value));
  single(`${p}leader`, "gauge", INGEST_DESCRIPTIONS.role, s.role === "leader" ? 1 : 0, {
    role: s.role,
  });
  if (s.epoch !== null) {
    single(`${p}epoch`, "gauge", INGEST_DESCRIPTIONS.epoch, s.epoch);
  }
  single(`${p}takeovers_total`, "counter", INGEST_DESCRIPTIONS.takeovers, s.takeovers);
  single(`${p}fenced_commits_total`, "counter", INGEST_DESCRIPTIONS.fenced, s.fenced);
  single(`${p}state`, "gauge", INGEST_DESCRIPTIONS.state, 1, { state: s.state });
  single(`${p}events_received_total`, "counter", INGEST_DESCRIPTIONS.received, s.received);
  single(`${p}events_applied_total`, "counter", INGEST_DESCRIPTIONS.applied, s.applied);
  metric(
    `${p}events_rejected_total`,
    "counter",
    INGEST_DESCRIPTIONS.rejectedByReason,
    Object.entries(s.rejectedByReason)
      .map(([reason, n]) => sample(`${p}events_rejected_total`, { reason }, n)).join(""),
  );
  single(`${p}events_ignored_total`, "counter", INGEST_DESCRIPTIONS.ignored, s.ignored);
  single(`${p}reconnects_total`, "counter", INGEST_DESCRIPTIONS.reconnects, s.reconnects);
  if (s.lagMs !== null) {
    single(`${p}lag_seconds`, "gauge", INGEST_DESCRIPTIONS.lagMs, s.lagMs / 1000);
  }
  if (s.checkpointAgeMs !== null) {
    single(
      `${p}checkpoint_age_seconds`,
      "gauge",
      INGEST_DESCRIPTIONS.checkpointAgeMs,
      s.checkpointAgeMs / 1000,
    );
  }
  single(`${p}stuck`, "gauge", INGEST_DESCRIPTIONS.stuck, s.stuck === null ? 0 : 1);
  metric(
    "scorestream_writer_queue_depth",
    "gauge",
    INGEST_DESCRIPTIONS.queueDepth,
    s.queueDepth.map((depth, writer) =>
      sample("scorestream_writer_queue_depth", { writer: String(writer) }, depth)
    ).join(""),
  );
  metric(
    "scorestream_writer_batch_size",
    "histogram",
    "Events per committed batch.",
    histogramLines("scorestream_writer_batch_size", {}, s.batchSize),
  );
  metric(
    "scorestream_writer_commit_latency_seconds",
    "histogram",
    "Time from handing a batch to a writer to its commit.",
    histogramLines("scorestream_writer_commit_latency_seconds", {}, s.commitLatencyMs, 1 / 1000),
  );
  return text;
}

/** Student and exam pages by what answering them took. */
export function renderAnswerMetrics(answered: Record<AnswerSource, number>): string {
  const name = "scorestream_http_page_answers_total";
  let text = header(
    name,
    "counter",
    "Student and exam pages answered from memory alone, after a version lookup, or by reading the page.",
  );
  for (const [source, count] of Object.entries(answered)) text += sample(name, { source }, count);
  return text;
}

/** The change stream's subscribers and what was sent to them. */
export function renderEventMetrics(s: EventHubStats): string {
  const p = "scorestream_events_";
  const one = (name: string, type: string, help: string, value: number) =>
    header(p + name, type, help) + sample(p + name, {}, value);
  return one("subscribers", "gauge", "Streams of /events open now.", s.subscribers) +
    one("subscribers_opened_total", "counter", "Streams of /events opened.", s.opened) +
    one("sent_total", "counter", "result events sent, snapshots included.", s.sent) +
    one(
      "slow_disconnects_total",
      "counter",
      "Subscribers disconnected because their buffer filled.",
      s.slow,
    ) +
    one("resets_total", "counter", "Resumes from a cursor outside the window.", s.resets) +
    one("refused_total", "counter", "Streams refused: too many subscribers.", s.refused);
}

/** The process's own memory, which Deno reports without any permission. */
export function renderProcessMetrics(): string {
  const { rss, heapUsed } = Deno.memoryUsage();
  return header("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.") +
    sample("process_resident_memory_bytes", {}, rss) +
    header("scorestream_heap_used_bytes", "gauge", "V8 heap in use, in bytes.") +
    sample("scorestream_heap_used_bytes", {}, heapUsed);
}

function header(name: string, type: string, help: string): string {
  return `# HELP ${name} ${help}\n# TYPE ${name} ${type}\n`;
}

function sample(name: string, labels: Record<string, string>, value: number): string {
  const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return `${name}${pairs.length ? `{${pairs.join(",")}}` : ""} ${formatValue(value)}\n`;
}

function histogramLines(
  name: string,
  labels: Record<string, string>,
  h: Histogram,
  scale = 1,
): string {
  let text = "";
  let cumulative = 0;
  h.buckets.forEach((bound, i) => {
    cumulative += h.counts[i] ?? 0;
    text += sample(`${name}_bucket`, { ...labels, le: formatValue(bound * scale) }, cumulative);
  });
  text += sample(`${name}_bucket`, { ...labels, le: "+Inf" }, h.count);
  text += sample(`${name}_sum`, labels, h.sum * scale);
  text += sample(`${name}_count`, labels, h.count);
  return text;
}

function escapeLabel(value: string): string {
  return value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return "NaN";
  if (value === Infinity) return "+Inf";
  if (value === -Infinity) return "-Inf";
  return String(value);
}
