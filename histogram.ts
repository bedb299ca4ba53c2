/**
 * A histogram in the shape Prometheus renders: the ingest pipeline's and the
 * HTTP server's distributions alike, made and rendered by different folders.
 */
export interface Histogram {
  /** Upper bounds, ascending; an implicit +Inf bucket follows. */
  buckets: number[];
  /** Observations per bucket (not cumulative), one more than `buckets` for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/** An empty histogram over the given upper bounds. */
export function createHistogram(buckets: number[]): Histogram {
  return { buckets, counts: new Array(buckets.length + 1).fill(0), sum: 0, count: 0 };
}

/** Records one observation. */
export function observe(histogram: Histogram, value: number): void {
  let i = 0;
  while (i < histogram.buckets.length && value > histogram.buckets[i]) i++;
  histogram.counts[i]++;
  histogram.sum += value;
  histogram.count++;
}
