/**
 * A bounded FIFO with O(1) push, shift and removal of any entry (a client that gave up or timed
 * out leaves the middle of the queue). Intrusive doubly-linked list: no array shifting, no
 * tombstones.
 */
export interface QueueLink {
  prev: QueueLink | null;
  next: QueueLink | null;
  queued: boolean;
}

export class BoundedQueue<T extends QueueLink> {
  private head: T | null = null;
  private tail: T | null = null;
  private count = 0;

  constructor(readonly max: number) {}

  get size(): number {
    return this.count;
  }

  get full(): boolean {
    return this.count >= this.max;
  }

  /** Append; false (and nothing changes) when the queue is full. */
  push(item: T): boolean {
    if (this.count >= this.max || item.queued) return false;
    item.prev = this.tail;
    item.next = null;
    if (this.tail) this.tail.next = item;
    else this.head = item;
    this.tail = item;
    item.queued = true;
    this.count++;
    return true;
  }

  /** Put back at the front (a client whose handoff failed keeps its place). */
  unshift(item: T): void {
    if (item.queued) return;
    item.next = this.head;
    item.prev = null;
    if (this.head) this.head.prev = item;
    else this.tail = item;
    this.head = item;
    item.queued = true;
    this.count++;
  }

  peek(): T | null {
    return this.head;
  }

  shift(): T | null {
    const item = this.head;
    if (item) this.remove(item);
    return item;
  }

  remove(item: T): void {
    if (!item.queued) return;
    if (item.prev) item.prev.next = item.next;
    else this.head = item.next as T | null;
    if (item.next) item.next.prev = item.prev;
    else this.tail = item.prev as T | null;
    item.prev = item.next = null;
    item.queued = false;
    this.count--;
  }

  *[Symbol.iterator](): Iterator<T> {
    for (let i = this.head; i; i = i.next as T | null) yield i;
  }
}
