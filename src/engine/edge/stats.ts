/**
 * Queue-wait percentiles from the last `size` samples (a fixed ring: memory never grows, and
 * the numbers describe recent traffic, which is what an operator watching `top` wants).
 */
export class WaitReservoir {
  private readonly ring: Float64Array;
  private next = 0;
  private filled = 0;

  constructor(size = 1024) {
    this.ring = new Float64Array(size);
  }

  add(ms: number): void {
    this.ring[this.next] = ms;
    this.next = (this.next + 1) % this.ring.length;
    if (this.filled < this.ring.length) this.filled++;
  }

  get count(): number {
    return this.filled;
  }

  /** Nearest-rank percentile (0 < p <= 100), 0 when empty. */
  percentile(p: number): number {
    if (this.filled === 0) return 0;
    const sorted = this.ring.slice(0, this.filled).sort();
    const rank = Math.min(this.filled, Math.max(1, Math.ceil((p / 100) * this.filled)));
    return Math.round(sorted[rank - 1]! * 100) / 100;
  }
}
