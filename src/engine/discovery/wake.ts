/**
 * A queue's "wait for the next push, or the end": hint streams park here between hints. The
 * abort listener is removed after every wait; one added per wait and never removed piled up
 * (MaxListenersExceededWarning) in a long watch with a steady trickle of hints.
 */
export class Wakeup {
  private wakeFn: (() => void) | null = null;

  /** Resolve a pending wait (no-op when nobody waits). */
  wake(): void {
    this.wakeFn?.();
  }

  wait(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.wakeFn = null;
        signal.removeEventListener('abort', done);
        resolve();
      };
      this.wakeFn = done;
      signal.addEventListener('abort', done, { once: true });
    });
  }
}

/** Resolves when the signal aborts (a source that never changes still "streams" until then). */
export function untilAborted(signal: AbortSignal): Promise<void> {
  return new Wakeup().wait(signal);
}
