/**
 * The CLI's output, written straight to fds 1 and 2. process.stdout and
 * process.stderr would load Node's stream machinery (several ms of a CLI
 * start) to print a line or two. A reader that went away (EPIPE: `koci list
 * | head -1`) ends the output quietly; a non-blocking fd is waited on.
 */
import { writeSync } from 'node:fs';
import { sleepSync } from '../sleep';

function writeAll(fd: number, text: string): void {
  let buf = Buffer.from(text);
  while (buf.length) {
    try {
      buf = buf.subarray(writeSync(fd, buf));
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === 'EAGAIN') sleepSync(1);
      else if (code === 'EPIPE') return;
      else throw e;
    }
  }
}

/** text to standard output */
export function stdout(text: string): void {
  writeAll(1, text);
}

/** text to standard error */
export function stderr(text: string): void {
  writeAll(2, text);
}
