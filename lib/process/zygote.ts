/**
 * The library's warm zygote: one long-lived `node --single-threaded` per
 * Runtime, with koci's create code loaded once, so that a container costs a
 * fork() instead of a Node start and a module load (~150 ms).
 *
 * launcher.ts spawns it with the control socket (SOCK_SEQPACKET) on fd 3
 * and /dev/null on fds 4..ZYGOTE_FDS+2: Node's own fds land above that
 * range, so a worker can place preserved fds there without clobbering them.
 * A request is one packet: ZygoteRequest as JSON, plus fds by SCM_RIGHTS,
 * the reply pipe first.
 *
 * The zygote keeps one forked spare worker blocked in recvmsg on the control
 * socket, so a request meets a process already forked. The spare that takes
 * a request tells the zygote, which forks the next spare once that worker has
 * made its container (or exec'd process), or at once when another request
 * waits: the next spare's fork and network namespace do not compete for the
 * CPUs with the container being made, and requests still run concurrently,
 * each in its own worker. The worker places the container's
 * stdio, runs create (or a whole run: create, start, blocking wait, delete;
 * or an exec and its wait, serve-exec.ts) synchronously, writes helper.ts's
 * JSON-line replies on the reply pipe and _exits. EOF on the control socket (the host closed it or exited) ends the
 * spare and then the zygote; workers never depend on it.
 */
import { readSync, writeSync } from 'node:fs';
import { constants as os } from 'node:os';
import * as C from '../../bindings/constants';
import * as libc from '../../bindings/libc';
import { recvWithFds, sendWithFds } from '../../bindings/socket';
import { createContainer } from '../container/create';
import { deleteContainer } from '../container/delete';
import { startContainer } from '../container/start';
import { toWire } from '../errors';
import { type CompiledSeccomp, prepareSeccomp, releaseSeccomp, useSeccompMemo } from '../security/seccomp';
import { SeccompDiskCache } from '../security/seccomp-cache';
import { defaultSpec } from '../spec/default';
import { validateConfig } from '../spec/validate';
import { sleepSync } from '../sleep';
import { procStat } from '../state/liveness';
import { StateStore } from '../state/store';
import { dropNetworkNamespace, prepareNetworkNamespace } from '../namespaces';
import { serveExec } from './serve-exec';
import { keepTrampoline } from './trampoline';
import { FD_DEV_NULL, ZYGOTE_CTL, ZYGOTE_FDS, type ZygoteRequest } from './zygote-protocol';

/** in the worker: the container's fds onto 0..n-1; nothing else of the zygote's below ZYGOTE_FDS+3 */
function placeFds(map: number[], fds: number[]): void {
  let devNull = -1;
  // every received fd is above the reserved range (all of it was open when they arrived), so no source is a target
  map.forEach((m, target) => {
    if (m === FD_DEV_NULL && devNull < 0) devNull = libc.open('/dev/null', C.O_RDWR | C.O_CLOEXEC);
    libc.dup3(m === FD_DEV_NULL ? devNull : fds[m], target, 0);
  });
  // the control socket and the unused reserved slots must not reach the container
  if (map.length <= ZYGOTE_FDS + 2) libc.closeRange(map.length, ZYGOTE_FDS + 2, 0);
  for (const fd of [...fds.slice(1), devNull]) if (fd >= 0) libc.close(fd);
}

let replyFd = -1;
/** the pipe whose end tells the zygote that this worker has made its container */
let tellFd = -1;

/** the container's process has its copies of the caller's stdio: ours would keep the caller's pipes open after it is gone */
function releaseStdio(stdio: number[]): void {
  const devNull = libc.open('/dev/null', C.O_RDWR | C.O_CLOEXEC);
  stdio.forEach((_, fd) => libc.dup3(devNull, fd, 0));
  libc.close(devNull);
}

/** in the worker: the request, synchronously; replies as helper.ts's. made(): the container (or exec'd process) is made */
function serve(req: ZygoteRequest, reply: (msg: object) => void, made: () => void): void {
  // the exec'd process does not get the reply pipe: it is above its preserved fds, and those above are closed on exec
  if (req.op === 'exec') {
    dropNetworkNamespace(); // made ahead for a container
    made(); // an exec is light: the next spare need not wait
    return serveExec(req.exec, reply, () => releaseStdio(req.stdio));
  }
  const store = new StateStore(req.create.root);
  const warnings: string[] = [];
  const warn = (m: string) => warnings.push(m);
  const take = () => warnings.splice(0);
  // the container's processes must not hold the reply pipe (the library reads it to EOF), nor the zygote's word
  let reader: number | undefined;
  const onStartReader = req.op === 'run' ? (fd: number) => (reader = fd) : undefined;
  const rec = createContainer({ ...req.create, closeFds: [replyFd, tellFd], warn, onStartReader });
  made();
  releaseStdio(req.stdio);
  if (req.op === 'create') return reply({ created: store.ociState(rec), warnings: take() });
  try {
    startContainer(store, rec.id, warn, reader);
  } catch (e) {
    deleteContainer(store, rec.id, true, warn);
    throw e;
  }
  // the state as of the exec: running with its pid, even if the process has already exited
  reply({ created: store.stateAs(rec, 'running'), warnings: take() });
  // create made this worker the subreaper, so the init is its child now that stage 1 has exited
  const w = libc.waitpid(rec.pid!)!;
  const exited = { exitCode: w.exitCode, signal: w.signal };
  // the caller may go on while the container is removed (its Runtime's later calls wait for that), unless
  // poststop hooks must have run by then
  if (req.keep || rec.config.hooks?.poststop?.length) {
    if (!req.keep) deleteContainer(store, rec.id, true, warn);
    return reply({ exited, warnings: take() });
  }
  reply({ exited, removing: true, warnings: take() });
  // TEST-ONLY (test/library.test.ts): widen the removal so the test can see the caller go on meanwhile
  const delay = Number(process.env.KOCI_TEST_REMOVE_DELAY_MS ?? 0);
  if (delay > 0) sleepSync(delay);
  deleteContainer(store, rec.id, true, warn);
  reply({ removed: true, warnings: take() });
}

/** a request in hand (the spare's setup done): serve it and exit */
function worker(req: ZygoteRequest, fds: number[], tell: number): never {
  replyFd = fds[0];
  tellFd = tell;
  const made = () => {
    if (tellFd >= 0) libc.close(tellFd);
    tellFd = -1;
  };
  // a host that went away must not stop the container's lifecycle halfway (Node ignores SIGPIPE: EPIPE here)
  const reply = (msg: object) => {
    try {
      writeSync(replyFd, JSON.stringify(msg) + '\n');
    } catch {
      /* nobody to tell */
    }
  };
  try {
    placeFds(req.stdio, fds);
    serve(req, reply, made);
    libc._exit(0);
  } catch (e) {
    reply({ error: toWire(e) });
    libc._exit(1);
  }
}

/**
 * Seccomp programs by profile. A worker that compiles a profile sends the
 * program here over a socketpair (best effort, never blocking); the zygote
 * takes them in before each fork, so later workers skip libseccomp (~10 ms).
 * Compiling is a pure function of the profile and this host's libseccomp and
 * kernel, which cannot change under a running zygote.
 *
 * Behind that, the state root's programs on disk (seccomp-cache.ts, shared
 * with the CLI): a new zygote reads the default profile's instead of
 * compiling it (~15 ms of its first container). As for the CLI, a program is
 * written there only once a container was created with it: by the worker
 * that did, which then tells the zygote, so the next ones do not write again.
 */
interface Known {
  c: CompiledSeccomp;
  /** in the state root's cache already */
  onDisk: boolean;
}
const compiled = new Map<string, Known>();
const MEMO_MAX = 32;
let inWorker = false;
let memoIn = -1;
let memoOut = -1;
let disk: SeccompDiskCache | undefined;
/** in a worker: the program it used that the disk does not have yet (written by keep) */
let unsaved: [string, CompiledSeccomp] | undefined;

function remember(profile: string, c: CompiledSeccomp, onDisk: boolean): void {
  const before = compiled.get(profile);
  compiled.delete(profile);
  compiled.set(profile, { c, onDisk: onDisk || before?.onDisk === true });
  if (compiled.size > MEMO_MAX) compiled.delete(compiled.keys().next().value!);
}

/** the zygote remembers; a worker tells the zygote */
function note(profile: string, c: CompiledSeccomp, onDisk: boolean): void {
  if (!inWorker) return remember(profile, c, onDisk);
  try {
    sendWithFds(memoOut, Buffer.from(JSON.stringify({ profile, ...c, bpf: c.bpf.toString('base64'), onDisk })), []);
  } catch {
    /* full or too big: a later worker compiles (or reads) it again */
  }
}

function setupMemo(root: string | undefined): void {
  [memoIn, memoOut] = libc.socketpair(C.AF_UNIX, C.SOCK_SEQPACKET | C.SOCK_CLOEXEC);
  for (const fd of [memoIn, memoOut]) libc.fcntl(fd, C.F_SETFL, libc.fcntl(fd, C.F_GETFL) | C.O_NONBLOCK);
  if (root) disk = new SeccompDiskCache(root);
  useSeccompMemo({
    get: (profile) => {
      const known = compiled.get(profile);
      if (known) {
        if (inWorker && !known.onDisk) unsaved = [profile, known.c];
        return known.c;
      }
      const c = disk?.get(profile);
      if (c) note(profile, c, true);
      return c;
    },
    set: (profile, c) => {
      if (inWorker) unsaved = [profile, c];
      note(profile, c, false);
    },
    keep: () => {
      if (!unsaved || !disk) return;
      const [profile, c] = unsaved;
      unsaved = undefined;
      // a worker forked before the zygote heard of the write finds it there
      if (!disk.get(profile)) {
        disk.set(profile, c);
        disk.keep();
      }
      note(profile, c, true);
    },
  });
}

/** take in what workers compiled (or read, or wrote to disk) since the last request */
function learn(): void {
  for (;;) {
    let data: Buffer;
    try {
      data = recvWithFds(memoIn, 1 << 20, 0).data;
    } catch {
      return; // EAGAIN: nothing more
    }
    if (!data.length) return;
    try {
      const m = JSON.parse(data.toString('utf8')) as CompiledSeccomp & { profile: string; bpf: string; onDisk: boolean };
      remember(m.profile, { bpf: Buffer.from(m.bpf, 'base64'), loadFlags: m.loadFlags, notify: m.notify, skipped: m.skipped }, m.onDisk === true);
    } catch {
      /* truncated: ignore */
    }
  }
}

/**
 * Load what every worker would otherwise load on first use (the config
 * validators, libseccomp unless the disk has the program), and run it once:
 * pure work on koci's own default spec (whose program the memo then holds),
 * nothing that reads host state a worker must see fresh.
 */
function warm(): void {
  const spec = defaultSpec({ seccomp: true });
  validateConfig(spec);
  keepTrampoline();
  // V8 reads the host's time zone at the first Date; koci only writes UTC (ISO) times
  new Date().toISOString();
  try {
    releaseSeccomp(prepareSeccomp(spec.linux?.seccomp));
  } catch {
    /* no libseccomp: each request whose config needs it is refused on its own */
  }
}

const TAKEN = 0x72; // 'r': a spare took a request
const HOST_GONE = 0x65; // 'e': EOF on the control socket

/** the spare: wait for one request, tell the zygote (`tell`), become its worker; never returns into the zygote's loop */
function spare(tell: number): never {
  let req: ZygoteRequest;
  let fds: number[] = [];
  try {
    // the zygote gone, nobody would fork the next spare: the host starts a new zygote instead
    libc.prctl(C.PR_SET_PDEATHSIG, 9);
    if (procStat(libc.getpid())?.ppid !== zygotePid) libc._exit(0); // it died before the prctl
    // Node caches its pid: state files' temp names use it, and concurrent workers must not share one
    Object.defineProperty(process, 'pid', { value: libc.getpid(), enumerable: true, configurable: true });
    // the zygote's SIG_IGN would make every waitpid here fail with ECHILD
    libc.ignoreSignal(os.signals.SIGCHLD, false);
    // while idle: the costly part of a container's namespaces (a setns back that fails ends this spare)
    prepareNetworkNamespace();
    const msg = recvWithFds(ZYGOTE_CTL, 1 << 16, ZYGOTE_FDS + 4);
    fds = msg.fds;
    const gone = msg.data.length === 0 && fds.length === 0;
    // a request in hand outlives the zygote
    if (!gone) libc.prctl(C.PR_SET_PDEATHSIG, 0);
    libc.write(tell, Buffer.from([gone ? HOST_GONE : TAKEN]));
    if (gone) libc._exit(0);
    req = JSON.parse(msg.data.toString('utf8')) as ZygoteRequest;
    if (fds.length === 0) throw new Error('a request without a reply fd');
    // from here on the request is this worker's: the library must not send it again elsewhere
    writeSync(fds[0], '{"taken":true}\n');
  } catch (e) {
    try {
      if (fds.length) writeSync(fds[0], JSON.stringify({ error: toWire(e) }) + '\n');
    } finally {
      libc._exit(1);
    }
  }
  // `tell` stays open until the container is made: its end is the zygote's cue to fork the next spare
  worker(req, fds, tell);
}

/** process.pid, refreshed in a fork, still says whose fork it is */
const zygotePid = process.pid;

/** root: the Runtime's state root, for the programs kept on disk there */
export function main(root?: string): never {
  // the kernel reaps finished workers: no zombie per request, no SIGCHLD handling in a loop that never returns
  libc.ignoreSignal(os.signals.SIGCHLD, true);
  setupMemo(root);
  warm();
  const b = Buffer.alloc(1);
  let silent = 0;
  for (;;) {
    learn();
    // a pipe per spare: EOF without a word means it died, and another is forked
    const [heard, tell] = libc.pipe2(C.O_CLOEXEC);
    let pid: number;
    try {
      pid = libc.fork();
    } catch {
      // EAGAIN and the like: requests wait in the socket meanwhile
      libc.close(heard);
      libc.close(tell);
      sleepSync(10);
      continue;
    }
    if (pid === 0) {
      inWorker = true;
      libc.close(heard);
      spare(tell);
    }
    libc.close(tell);
    let n = 0;
    for (;;) {
      try {
        n = readSync(heard, b, 0, 1, null);
        break;
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EINTR') throw e;
      }
    }
    // the worker makes its container: the next spare is forked when it is done (the pipe's end, or its death),
    // or when another request is already waiting for one
    if (n === 1 && b[0] === TAKEN) libc.pollIn([heard, ZYGOTE_CTL], -1);
    libc.close(heard);
    if (n === 1 && b[0] === HOST_GONE) process.exit(0);
    // spares that keep dying before a request (a broken control socket): end, the host starts a new zygote on demand
    silent = n === 1 ? 0 : silent + 1;
    if (silent >= 3) process.exit(1);
  }
}

