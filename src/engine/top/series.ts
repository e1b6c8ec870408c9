/**
 * Rates from counter deltas, with a fixed-size history per series for sparklines.
 *
 * A series keeps the last counter value and time; each new sample gives a rate
 * (delta / seconds). A counter that goes backwards (the kernel rules were rebuilt, HAProxy
 * reloaded) restarts the series instead of producing a negative rate. The history is a ring of
 * time buckets (default 1 s x 300 = the last 5 minutes) in a Float64Array: a constant ~2.4 KB per
 * series whatever the refresh rate, NaN where no sample landed.
 */
export interface SeriesOptions {
  bucketMs: number;
  buckets: number;
}

export const DEFAULT_SERIES: SeriesOptions = { bucketMs: 1000, buckets: 300 };

export class RateSeries {
  private lastValue: number | null = null;
  private lastTime = 0;
  /** Latest rate per second, or null before two samples. */
  rate: number | null = null;
  private readonly ring: Float64Array;
  private head = -1; // absolute bucket index of the newest written bucket

  constructor(private readonly opts: SeriesOptions = DEFAULT_SERIES) {
    this.ring = new Float64Array(opts.buckets).fill(Number.NaN);
  }

  /** Feed a counter sample taken at `time` (ms). Returns the rate, or null when none yet. */
  add(value: number, time: number): number | null {
    const prev = this.lastValue;
    const dt = (time - this.lastTime) / 1000;
    if (prev !== null && dt <= 0) return this.rate; // same snapshot seen twice, or a clock step back
    this.lastValue = value;
    this.lastTime = time;
    if (prev === null || value < prev) {
      this.rate = null; // first sample, or a counter reset: no rate until the next one
      return null;
    }
    this.rate = (value - prev) / dt;
    this.record(this.rate, time);
    return this.rate;
  }

  /** Put a value (a gauge, or a rate computed elsewhere) into the history. */
  record(value: number, time: number): void {
    const b = Math.floor(time / this.opts.bucketMs);
    if (b < this.head - this.opts.buckets + 1) return;
    if (b > this.head) {
      const gap = Math.min(b - this.head, this.opts.buckets);
      for (let i = 1; i <= gap; i++) this.ring[this.slot(b - gap + i)] = Number.NaN;
      this.head = b;
    }
    const i = this.slot(b);
    // Several samples in one bucket: keep the latest (rates already average over their interval).
    this.ring[i] = value;
  }

  private slot(bucket: number): number {
    const n = this.opts.buckets;
    return ((bucket % n) + n) % n;
  }

  /** The last `count` buckets ending at `now`, oldest first (NaN where nothing was recorded). */
  history(count: number, now: number): number[] {
    const n = Math.min(count, this.opts.buckets);
    const end = Math.floor(now / this.opts.bucketMs);
    const out: number[] = new Array<number>(n);
    for (let k = 0; k < n; k++) {
      const b = end - n + 1 + k;
      out[k] = b > this.head || b <= this.head - this.opts.buckets ? Number.NaN : this.ring[this.slot(b)]!;
    }
    return out;
  }
}

const BARS = '▁▂▃▄▅▆▇█';

/**
 * A sparkline of `width` cells over `values` (oldest first): several values per cell are
 * averaged, NaN cells are blank, the scale is 0..max so a flat line near zero stays low.
 * `ascii` draws with `_.-=#` for terminals without Unicode block elements.
 */
export function sparkline(values: readonly number[], width: number, ascii = false): string {
  if (width <= 0) return '';
  const cells: number[] = [];
  const per = values.length / width;
  for (let c = 0; c < width; c++) {
    const from = Math.floor(c * per);
    const to = Math.max(from + 1, Math.floor((c + 1) * per));
    let sum = 0;
    let n = 0;
    for (let i = from; i < to && i < values.length; i++) {
      const v = values[i]!;
      if (!Number.isNaN(v)) {
        sum += v;
        n++;
      }
    }
    cells.push(n === 0 ? Number.NaN : sum / n);
  }
  const max = Math.max(0, ...cells.filter((v) => !Number.isNaN(v)));
  const bars = ascii ? '_.-=#' : BARS;
  return cells
    .map((v) => {
      if (Number.isNaN(v)) return ' ';
      if (max === 0) return bars[0]!;
      return bars[Math.min(bars.length - 1, Math.round((v / max) * (bars.length - 1)))]!;
    })
    .join('');
}
