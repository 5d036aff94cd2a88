/**
 * What koci passes through from a service manager: systemd socket
 * activation (LISTEN_FDS/LISTEN_PID) and NOTIFY_SOCKET, whose READY=1 from
 * inside the container reaches the caller's socket with MAINPID.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import * as libc from '../dist/bindings/libc';
import { dgramUnix, recvDgram } from '../dist/bindings/socket';
import { type Bundle, type Koci, KOCI, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping fd pass-through tests: ${skip}`);

function tmp(t: { teardown(fn: () => void): void }): string {
  const d = mkdtempSync(join(tmpdir(), 'koci-fds-'));
  t.teardown(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

t.test('LISTEN_FDS meant for koci pass on to the container as fds 3.., with LISTEN_FDS and LISTEN_PID=1', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = tmp(t);
  const b = makeBundle(t, ['sh', '-c', 'echo "fds=$LISTEN_FDS pid=$LISTEN_PID"; echo via-listen-fd >&3; echo via-preserved >&4']);
  const listen = openSync(join(dir, 'listen'), 'w');
  const preserved = openSync(join(dir, 'preserved'), 'w');
  try {
    // LISTEN_PID must be koci's own PID: the shell execs koci, keeping its PID
    const r = spawnSync('sh', ['-c', `LISTEN_PID=$$ LISTEN_FDS=1 exec ${KOCI} --root ${koci.root} run --preserve-fds 1 --bundle ${b.dir} ${uniqueId('lfd')}`], {
      stdio: ['ignore', 'pipe', 'pipe', listen, preserved],
      encoding: 'utf8',
      timeout: 30_000,
    });
    t.equal(r.status, 0, r.stderr);
    t.equal(r.stdout, 'fds=1 pid=1\n', 'the environment systemd would give the service');
  } finally {
    closeSync(listen);
    closeSync(preserved);
  }
  t.equal(readFileSync(join(dir, 'listen'), 'utf8'), 'via-listen-fd\n', 'fd 3 is the activation socket');
  t.equal(readFileSync(join(dir, 'preserved'), 'utf8'), 'via-preserved\n', '--preserve-fds follow the listen fds');

  const other = spawnSync(KOCI, ['--root', koci.root, 'run', '--bundle', b.dir, uniqueId('lfd')], {
    env: { ...process.env, LISTEN_FDS: '1', LISTEN_PID: '1' },
    encoding: 'utf8',
    timeout: 30_000,
  });
  t.match(other.stdout, /^fds= pid=$/m, 'LISTEN_FDS for another PID are not ours: nothing passes');
});

/**
 * The caller's notify socket (a datagram socket the test reads) and a bundle whose process sends
 * READY=1 there: busybox has no systemd-notify; its logger sends one datagram to /dev/log, and a
 * newline in the message makes READY=1 a line of its own, as sd_notify sends it
 */
function notifySetup(t: Test, before: string): { koci: Koci; fd: number; b: Bundle; env: NodeJS.ProcessEnv } {
  const koci = kociCli(t);
  const dir = tmp(t);
  chmodSync(dir, 0o755);
  const hostSock = join(dir, 'notify.sock');
  const fd = dgramUnix(hostSock);
  t.teardown(() => libc.close(fd));
  const b = makeBundle(t, ['sh', '-c', `${before}ln -s "$NOTIFY_SOCKET" /dev/log; logger "$(printf "up\\nREADY=1")"; exec sleep 1000`], (s) => {
    s.root!.readonly = false;
  });
  return { koci, fd, b, env: { ...process.env, NOTIFY_SOCKET: hostSock } };
}

t.test('NOTIFY_SOCKET: READY=1 from the container reaches the caller, with MAINPID; start waits for it', { skip }, async (t) => {
  const { koci, fd, b, env } = notifySetup(t, 'echo "$NOTIFY_SOCKET" > /tmp/ns; sleep 0.5; ');
  const id = uniqueId('ntf');
  t.equal(koci(['create', '--bundle', b.dir, id], { env }).status, 0);
  const started = koci(['start', id], { env });
  t.equal(started.status, 0, started.stderr);
  const got: string[] = [];
  for (let m = recvDgram(fd, 0); m; m = recvDgram(fd, 0)) got.push(m.toString());
  t.equal(got.length, 2, 'start returned after relaying READY (both datagrams are already here)');
  t.match(got[0], /\nREADY=1$/, "the container's message");
  t.equal(got[1], `MAINPID=${stateOf(koci, id).pid}\n`, 'MAINPID: the init, as the host sees it');
  t.equal(readFileSync(join(b.rootfs, 'tmp', 'ns'), 'utf8'), '/run/notify/notify.sock\n', "the container's NOTIFY_SOCKET is koci's socket");
  t.equal(koci(['exec', id, 'sh', '-c', 'touch /run/notify/x 2>/dev/null || echo read-only']).stdout, 'read-only\n', 'mounted read-only');
});

t.test('NOTIFY_SOCKET through run --detach: a READY=1 sent at once, as the process starts, is relayed too', { skip }, async (t) => {
  // no pause before READY: run listens on the container's socket before the process can run (create does not let the
  // init go on early with a NOTIFY_SOCKET; the window is too small for this test to show it always, a static sender would)
  const { koci, fd, b, env } = notifySetup(t, '');
  const id = uniqueId('ntf');
  const r = koci(['run', '--detach', '--bundle', b.dir, id], { env, timeout: 20_000 });
  t.equal(r.status, 0, `run --detach returned once READY came: ${r.stderr}`);
  const got = recvDgram(fd, 0);
  t.match(got?.toString() ?? '', /\nREADY=1$/, "the container's message was relayed");
  t.equal(koci(['delete', '--force', id]).status, 0);
});

t.test('NOTIFY_SOCKET: an init that exits without READY does not hang start', { skip }, async (t) => {
  const koci = kociCli(t);
  const dir = tmp(t);
  const hostSock = join(dir, 'notify.sock');
  const fd = dgramUnix(hostSock);
  t.teardown(() => libc.close(fd));
  const b = makeBundle(t, ['sh', '-c', 'sleep 0.3']);
  const id = uniqueId('ntf');
  const env = { ...process.env, NOTIFY_SOCKET: hostSock };
  t.equal(koci(['create', '--bundle', b.dir, id], { env }).status, 0);
  t.equal(koci(['start', id], { env }).status, 0);
  t.equal(recvDgram(fd, 0), null, 'nothing was relayed');
  t.equal(stateOf(koci, id).status, 'stopped');
});
