/**
 * The library's way to a forking process (the host itself must never fork):
 * a warm zygote (zygote.ts), one per Runtime, started on first use, and the
 * per-call helper (helper.ts) for the two cases the zygote does not take: a
 * terminal to relay to the host's stdio (that needs an event loop), and more
 * preserved fds than the zygote holds room for.
 *
 * The zygote is unref'd, so it never keeps the host alive; it ends when
 * close() or the host's exit closes its control socket. A request in flight
 * keeps the host alive through its reply pipe, as a spawned helper did.
 */
import { type ChildProcess, spawn, type StdioOptions } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { Socket } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { sendWithFds } from '../../bindings/socket';
import { fromWire, KociError, SyscallError, type WireError } from '../errors';
import type { State } from '../spec/types';
import type { ExitStatus, HelperRequest, Request } from './helper';
import { NODE_FLAGS, ownNodeEnv } from './node-env';
import { FD_DEV_NULL, ZYGOTE_FDS, type ZygoteRequest } from './zygote-protocol';

export interface HelperReply {
  /** the zygote's worker has the request (sent first, not counted as a reply) */
  taken?: boolean;
  /** create, run: the container's state; exec: the process's host pid */
  created?: State | { pid: number };
  exited?: ExitStatus;
  /** run: the container is being deleted now; a `removed` reply follows */
  removing?: boolean;
  removed?: boolean;
  error?: WireError;
  warnings?: string[];
}

export interface Launch {
  /** the i-th reply, or the final one (`exited` or `error`); an error reply rejects (typed, through fromWire) */
  reply(index: number | 'last'): Promise<HelperReply>;
  /** the container's stdout/stderr where stdio asked for 'pipe' */
  stdout: Readable | null;
  stderr: Readable | null;
}

const HELPER = join(__dirname, 'helper.js');
const ZYGOTE = join(__dirname, 'zygote-main.js');

/** JSON-line replies from a stream; a writer gone (`finish`) without the one asked for is an error */
function replies(stream: Readable, warn: (m: string) => void, lost: () => string) {
  const got: HelperReply[] = [];
  const waiters: Array<() => void> = [];
  let buf = '';
  let ended = false;
  let finished = false;
  let taken = false;
  let failure: Error | undefined;
  const wake = () => waiters.splice(0).forEach((w) => w());
  stream
    .setEncoding('utf8')
    .on('data', (chunk: string) => {
      buf += chunk;
      for (let nl = buf.indexOf('\n'); nl >= 0; nl = buf.indexOf('\n')) {
        const r = JSON.parse(buf.slice(0, nl)) as HelperReply;
        if (r.taken) taken = true;
        else got.push(r);
        buf = buf.slice(nl + 1);
      }
      wake();
    })
    .on('end', () => {
      ended = true;
      wake();
    });
  const reply = (index: number | 'last'): Promise<HelperReply> =>
    new Promise((resolve, reject) => {
      const check = () => {
        const done = ended && finished;
        // the final reply comes after the delete: no need to wait for the writer's exit
        const r = index === 'last' ? got.find((x) => x.exited !== undefined || x.error !== undefined) : got[index];
        if (r?.error) return reject(fromWire(r.error));
        if (r) {
          r.warnings?.forEach(warn);
          return resolve(r);
        }
        if (failure) return reject(failure);
        if (done) return reject(new KociError(`koci helper ${lost()} without a result`));
        waiters.push(check);
      };
      check();
    });
  /** true once a worker has the request; false when the stream ended first (the request was never read) */
  const isTaken = (): Promise<boolean> =>
    new Promise((resolve) => {
      const check = () => (taken || got.length ? resolve(true) : ended || failure ? resolve(false) : waiters.push(check));
      check();
    });
  return {
    reply,
    isTaken,
    /** the writer is gone (its exit status known, where there is one) */
    finish: () => ((finished = true), wake()),
    fail: (e: Error) => ((failure = e), wake()),
  };
}

/** the host fd behind a spawn-style stream, as child_process.spawn finds it */
function streamFd(s: unknown): number | undefined {
  const o = s as { fd?: unknown; _handle?: { fd?: unknown } | null; handle?: { fd?: unknown } | null };
  if (typeof o.fd === 'number') return o.fd;
  for (const h of [o._handle, o.handle]) if (h && typeof h.fd === 'number' && h.fd >= 0) return h.fd;
  return undefined;
}

interface Zygote {
  child: ChildProcess;
  /** our end of the control socket, -1 once closed */
  ctl: number;
  /** resolves with how the zygote ended */
  ended: Promise<string>;
  status?: string;
  stderr: string;
}

export class Launcher {
  private zygote: Zygote | undefined;

  constructor(
    private readonly nodePath: string,
    private readonly warn: (message: string) => void,
    /** the Runtime's state root (absolute): the zygote reads compiled seccomp programs kept there */
    private readonly root: string,
  ) {}

  /** create, run or exec through the zygote (the per-call helper where it cannot) */
  async launch(req: Request, stdio: StdioOptions, capture: boolean): Promise<Launch> {
    const preserve = preserveFds(req);
    if (preserve > ZYGOTE_FDS || (req.op === 'run' && wantsTerminal(req.create.bundle))) return this.helper(req, stdio);
    const io = typeof stdio === 'string' ? [stdio, stdio, stdio] : [...(stdio ?? [])];
    while (io.length < 3) io.push('inherit');
    /** the container's fds, after the reply pipe's write end in what is sent */
    const fds: number[] = [];
    /** fds we made for this request, closed once a worker has them */
    const ours: number[] = [];
    const streams: Array<Readable | null> = [];
    const map: number[] = [];
    try {
      for (let i = 0; i < 3 + preserve; i++) {
        let v = io[i] as unknown;
        // as spawn: null/undefined is 'pipe' for 0-2, 'ignore' after; 'overlapped' is 'pipe' off Windows
        if (v === null || v === undefined) v = i < 3 ? 'pipe' : 'ignore';
        if (v === 'overlapped') v = 'pipe';
        streams[i] = null;
        if (v === 'ignore') {
          // /dev/null after 0-2 too (spawn leaves those closed): a closed slot in the preserved range
          // would be taken by the runtime's own fds on their way to the container
          map.push(FD_DEV_NULL);
          continue;
        }
        let fd: number | undefined;
        if (v === 'inherit') fd = i;
        else if (v === 'pipe') {
          const [r, w] = libc.pipe2(C.O_CLOEXEC);
          if (i === 0) {
            // nobody is given the writing end: the container reads EOF
            libc.close(w);
            fd = r;
          } else {
            streams[i] = new Socket({ fd: r, readable: true, writable: false });
            fd = w;
          }
          ours.push(fd);
        } else if (typeof v === 'number') fd = Number.isInteger(v) && v >= 0 ? v : undefined;
        else if (typeof v === 'object') fd = streamFd(v);
        if (fd === undefined) throw new TypeError(`stdio[${i}]: ${String(v)} is not supported (use 'inherit', 'ignore', 'pipe', an fd or a stream with one)`);
        map.push(fds.length + 1);
        fds.push(fd);
      }
      for (let attempt = 0; ; attempt++) {
        const [replyR, replyW] = libc.pipe2(C.O_CLOEXEC);
        const reply = new Socket({ fd: replyR, readable: true, writable: false });
        let zygote: Zygote | undefined;
        const r = replies(reply, this.warn, () => `ended${zygote?.status ? ` (zygote: ${zygote.status})` : ''}`);
        reply.on('end', r.finish).on('error', r.fail);
        try {
          zygote = await this.send({ ...req, stdio: map }, [replyW, ...fds]);
        } finally {
          libc.close(replyW);
        }
        // a zygote that died with the request unread (it held the socket to the end): a new one takes it
        if (!(await r.isTaken()) && attempt === 0) {
          this.forget(zygote);
          continue;
        }
        streams.forEach((s, i) => {
          // output nobody reads is drained, so the container never blocks on it
          if (s && !(capture && (i === 1 || i === 2))) s.on('error', () => {}).resume();
        });
        return { reply: r.reply, stdout: streams[1] ?? null, stderr: streams[2] ?? null };
      }
    } catch (e) {
      streams.forEach((s) => s?.destroy());
      throw e;
    } finally {
      for (const fd of ours) libc.close(fd);
    }
  }

  /** end the zygote (requests already sent still run); a later create, run or exec starts a new one */
  async close(): Promise<void> {
    const z = this.zygote;
    this.zygote = undefined;
    if (!z) return;
    this.closeCtl(z);
    z.child.ref();
    await z.ended;
  }

  private forget(z: Zygote): void {
    if (this.zygote === z) this.zygote = undefined;
    this.closeCtl(z);
  }

  private closeCtl(z: Zygote): void {
    if (z.ctl >= 0) libc.close(z.ctl);
    z.ctl = -1;
  }

  /** send one request; a zygote found dead is replaced once */
  private async send(req: ZygoteRequest, fds: number[]): Promise<Zygote> {
    const data = Buffer.from(JSON.stringify(req));
    for (let attempt = 0; ; attempt++) {
      const z = this.zygote ?? (await this.start());
      try {
        sendWithFds(z.ctl, data, fds);
        return z;
      } catch (e) {
        if (attempt > 0 || !(e instanceof SyscallError && (e.code === 'EPIPE' || e.code === 'ECONNRESET'))) throw e;
        this.forget(z);
      }
    }
  }

  private async start(): Promise<Zygote> {
    const [ctl, theirs] = libc.socketpair(C.AF_UNIX, C.SOCK_SEQPACKET | C.SOCK_CLOEXEC);
    const devNull = openSync('/dev/null', 'r');
    let child: ChildProcess;
    try {
      // fd 3: the control socket; 4..: /dev/null placeholders that keep Node's own fds above the preserved-fd range.
      // detached: its own session, so a ^C meant for the host's terminal does not end runs in flight
      // every function compiled once in the zygote (zygote-main.ts), not again in each worker (which cannot keep its work)
      child = spawn(this.nodePath, [...NODE_FLAGS, ZYGOTE, this.root], {
        stdio: ['ignore', 'ignore', 'pipe', theirs, ...Array<number>(ZYGOTE_FDS - 1).fill(devNull)],
        detached: true,
        env: ownNodeEnv(),
      });
    } finally {
      libc.close(theirs);
      closeSync(devNull);
    }
    const z: Zygote = { child, ctl, stderr: '', ended: Promise.resolve('') };
    z.ended = new Promise((resolve) => {
      const done = (status: string) => {
        z.status ??= status + (z.stderr ? `: ${z.stderr.trim().split('\n').pop()}` : '');
        if (this.zygote === z) this.zygote = undefined;
        this.closeCtl(z);
        resolve(z.status);
      };
      child.on('exit', (code, signal) => done(signal ?? `exit status ${code}`));
      child.on('error', (e) => done(e.message));
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (z.stderr = (z.stderr + d).slice(-2000)));
    // the zygote must never keep the host alive
    child.unref();
    (child.stderr as Socket).unref();
    if (child.pid === undefined) {
      // spawn failed (a bad nodePath): its 'error' event says why
      const why = await z.ended;
      throw new KociError(`cannot start the koci zygote (${this.nodePath}): ${why}`);
    }
    this.zygote = z;
    return z;
  }

  /** the per-call helper: a fresh `node --single-threaded helper.js`, the container's stdio as its own */
  private helper(req: Request, stdio: StdioOptions): Launch {
    const io = typeof stdio === 'string' ? [stdio, stdio, stdio] : [...stdio];
    while (io.length < 3) io.push('inherit');
    // the reply pipe goes after the container's stdio and preserved fds
    const replyFd = Math.max(io.length, 3 + preserveFds(req));
    while (io.length < replyFd) io.push('ignore');
    // 'ignore' after 0-2 is /dev/null, as in the zygote: spawn leaves such a slot closed, and the helper's
    // own fds (exec's channel, whose EOF tells that the process exec'd) would take it on their way to the container
    let devNull: number | undefined;
    for (let i = 3; i < replyFd; i++) if (io[i] === 'ignore' || io[i] === null || io[i] === undefined) io[i] = devNull ??= openSync('/dev/null', 'r+');
    const full: HelperRequest = { ...req, replyFd };
    let child: ChildProcess;
    try {
      child = spawn(this.nodePath, [...NODE_FLAGS, HELPER, JSON.stringify(full)], { stdio: [...io, 'pipe'] as StdioOptions, env: ownNodeEnv() });
    } finally {
      if (devNull !== undefined) closeSync(devNull);
    }
    let exit: string | undefined;
    const r = replies(child.stdio[replyFd] as Readable, this.warn, () => `exited (${exit})`);
    child.on('error', r.fail);
    child.on('exit', (code, signal) => {
      exit = signal ?? `status ${code}`;
      r.finish();
    });
    return { reply: r.reply, stdout: child.stdout, stderr: child.stderr };
  }
}

function preserveFds(req: Request): number {
  return (req.op === 'exec' ? req.exec.preserveFds : req.create.preserveFds) ?? 0;
}

/** whether run must relay a terminal (the zygote's workers cannot: that needs an event loop); a bad config is the zygote's to report */
function wantsTerminal(bundle: string): boolean {
  try {
    return (JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as { process?: { terminal?: unknown } }).process?.terminal === true;
  } catch {
    return false;
  }
}
