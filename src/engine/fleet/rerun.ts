/**
 * A level-triggered re-read that never runs twice at once (the fleet's `current` sync, the
 * deploy-state scan): a call while one is in flight makes one more pass after it and gets the
 * in-flight promise. `body` answers false to end early (the store is away: the next call re-reads).
 */
export class Rerun<A> {
  private running: Promise<void> | null = null;
  private again = false;

  constructor(
    private readonly body: (arg: A) => Promise<boolean | void>,
    private readonly stopped: () => boolean,
  ) {}

  /** The pass in flight (stop waits for it), or null. */
  get inFlight(): Promise<void> | null {
    return this.running;
  }

  run(arg: A): Promise<void> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        if ((await this.body(arg)) === false) return;
      } while (this.again && !this.stopped());
    })().finally(() => (this.running = null));
    return this.running;
  }
}
