import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { Runtime } from '../dist/lib/index';
import { KOCI, kociCli, makeBundle, rootSkipReason, uniqueId } from './helpers/fixtures';

const skip = rootSkipReason();
if (skip) t.comment(`skipping terminal tests: ${skip}`);

/** `koci run` with stdin from a file; the terminal's output comes back on stdout */
function runWithInput(t: { teardown(fn: () => void): void }, root: string, args: string[], input: string) {
  const dir = mkdtempSync(join(tmpdir(), 'koci-tty-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'in'), input);
  const fd = openSync(join(dir, 'in'), 'r');
  try {
    const r = spawnSync(KOCI, ['--root', root, ...args], { stdio: [fd, 'pipe', 'pipe'], encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  } finally {
    closeSync(fd);
  }
}

t.test('koci run of an unchanged `koci spec` bundle: a shell on a terminal, as PID 1', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t);
  rmSync(join(b.dir, 'config.json'));
  t.equal(koci(['spec', '--bundle', b.dir]).status, 0);
  const spec = JSON.parse(readFileSync(join(b.dir, 'config.json'), 'utf8'));
  t.equal(spec.process.terminal, true, 'koci spec asks for a terminal, like runc spec');
  const r = runWithInput(t, koci.root, ['run', '--bundle', b.dir, uniqueId('tty')], 'echo "pid=$$ host=$(hostname)"; exit 3\n');
  t.equal(r.status, 3, `the shell's exit status: ${r.stderr}`);
  t.match(r.stdout, /pid=1 host=koci\r\n/, 'typed input ran in PID 1, output through the terminal (CRLF)');
});

t.test('the terminal is the controlling terminal and stdio; consoleSize applies', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'tty; stty size; [ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo stdio-is-tty; ls /proc/self/fd | wc -l'], (s) => {
    s.process!.terminal = true;
    s.process!.consoleSize = { height: 30, width: 100 };
    s.process!.user = { uid: 1000, gid: 1000 };
  });
  const r = runWithInput(t, koci.root, ['run', '--bundle', b.dir, uniqueId('tty')], '');
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\r\n');
  t.equal(lines[0], '/dev/pts/0', 'a pty of the container devpts');
  t.equal(lines[1], '30 100', 'consoleSize');
  t.equal(lines[2], 'stdio-is-tty');
  t.equal(lines[3], '4', 'fds 0-2 and the one ls opened: nothing else');
});

t.test('a detached terminal without --console-socket is refused, nothing left', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh'], (s) => (s.process!.terminal = true));
  const id = uniqueId('tty');
  for (const args of [['create', '--bundle', b.dir, id], ['run', '-d', '--bundle', b.dir, id]]) {
    const r = koci(args);
    t.equal(r.status, 1, args[0]);
    t.match(r.stderr, /^koci: process\.terminal is true: .*--console-socket.*\n$/);
    t.notOk(existsSync(join(koci.root, id)), 'no state dir');
  }
});

t.test('library run relays the terminal', { skip }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'koci-lib-root-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  const b = makeBundle(t, ['sh', '-c', 'tty; exit 5'], (s) => (s.process!.terminal = true));
  const r = await new Runtime({ root }).run(uniqueId('tty'), { bundle: b.dir, capture: true });
  t.equal(r.exitCode, 5);
  t.equal(r.stdout, '/dev/pts/0\r\n');
});
