/** A synchronous sleep: koci's forked children and its lock waits may not return to the event loop. */
const cell = new Int32Array(new SharedArrayBuffer(4));

export function sleepSync(ms: number): void {
  Atomics.wait(cell, 0, 0, ms);
}
