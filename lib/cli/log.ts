/**
 * CLI logging as runc does it: --log FILE receives entries (text, or one
 * {"level","msg","time"} JSON object per line with --log-format json, which
 * containerd reads to show the last error), and errors also go to stderr.
 * Without --log, stderr is the log: with --log-format json it gets the same
 * JSON lines a log file would (as runc writes them), with text `koci: msg`.
 */
import { appendFileSync } from 'node:fs';
import { stderr } from './output';

export type Level = 'debug' | 'info' | 'warning' | 'error';

export class Logger {
  constructor(
    private readonly file: string | undefined,
    private readonly format: 'text' | 'json',
    private readonly debugEnabled: boolean,
  ) {}

  private entry(level: Level, msg: string): void {
    if (level === 'debug' && !this.debugEnabled) return;
    const time = new Date().toISOString();
    const line = this.format === 'json' ? JSON.stringify({ level, msg, time }) : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
    if (this.file) {
      try {
        appendFileSync(this.file, line + '\n');
      } catch {
        /* a log we cannot write must not hide the real error */
      }
    }
    // stderr gets what a person needs: errors and warnings always, debug when asked
    if (level === 'error' || level === 'warning' || (this.debugEnabled && !this.file)) {
      let out: string;
      if (!this.file && this.format === 'json') out = line; // no log file: stderr is the JSON log
      else if (this.format === 'json') out = `koci: ${msg}`;
      else out = `koci: ${level === 'error' ? '' : level + ': '}${msg}`;
      stderr(out + '\n');
    }
  }

  debug(msg: string): void {
    this.entry('debug', msg);
  }
  warn(msg: string): void {
    this.entry('warning', msg);
  }
  error(msg: string): void {
    this.entry('error', msg);
  }
}
