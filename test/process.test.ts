/**
 * The container process as config.json describes it: hostname, domainname,
 * env, cwd, user, umask, rlimits, oom score, no_new_privs, args, stdio and
 * fds, exit status. Real containers, checked from inside.
 */
import { spawn, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import type { Spec } from '../lib/spec/types';
import { KOCI, kociCli, makeBundle, rootSkipReason, uniqueId, type Koci } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping process tests: ${skip}`);

type T = Test;

/** run a container with `args` (and the spec edit) in the foreground; its stdout, stderr, exit status */
function runIn(t: T, koci: Koci, args: string[], edit?: (s: Spec) => void) {
  const b = makeBundle(t, args, edit);
  const id = uniqueId('proc');
  const r = koci(['run', '--bundle', b.dir, id]);
  return { ...r, b, id };
}

t.test('hostname and domainname in a uts namespace', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['sh', '-c', 'hostname; cat /proc/sys/kernel/domainname'], (s) => {
    s.hostname = 'box-one';
    s.domainname = 'dom.example';
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, 'box-one\ndom.example\n');
  const host = readFileSync('/proc/sys/kernel/hostname', 'utf8').trim();
  t.not(host, 'box-one', "the host's hostname is untouched");
});

t.test('process.env is the whole environment (plus HOME when unset, as runc)', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['env'], (s) => {
    s.process!.env = ['PATH=/bin:/sbin', 'FOO=bar baz', 'EMPTY=', 'EQ=a=b'];
  });
  const r = koci(['run', '--bundle', b.dir, uniqueId('env')], { env: { ...process.env, KOCI_TEST_LEAK: 'leaked' } });
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n').filter(Boolean).sort();
  // busybox env prints exactly what execve got: nothing from the caller; HOME from /etc/passwd as runc adds it
  t.same(lines, ['EMPTY=', 'EQ=a=b', 'FOO=bar baz', 'HOME=/root', 'PATH=/bin:/sbin']);
  t.notMatch(r.stdout, /KOCI_TEST_LEAK/, "the caller's environment does not leak");
});

t.test('cwd', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['pwd'], (s) => {
    s.process!.cwd = '/tmp';
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '/tmp\n');

  // runc creates a missing cwd (before the root is made read-only)
  const r2 = runIn(t, koci, ['sh', '-c', 'pwd; ls -ld .'], (s) => {
    s.process!.cwd = '/work/not/there';
  });
  t.equal(r2.status, 0, `a missing cwd is created: ${r2.stderr}`);
  t.match(r2.stdout, /^\/work\/not\/there\ndrwx/);
  t.ok(statSync(join(r2.b.rootfs, 'work/not/there')).isDirectory(), 'created inside the rootfs');

  // a cwd that exists but is a file cannot be entered
  const r3 = runIn(t, koci, ['pwd'], (s) => {
    s.process!.cwd = '/bin/sh';
  });
  t.not(r3.status, 0, 'a cwd that is a file fails');
  t.match(r3.stderr, /cwd|chdir/);
  t.equal(r3.stdout, '');
});

t.test('user: uid, gid, additionalGids', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['sh', '-c', 'id -u; id -g; grep -E "^(Uid|Gid|Groups):" /proc/self/status'], (s) => {
    s.process!.user = { uid: 1234, gid: 2345, additionalGids: [30, 10, 20] };
  });
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.equal(lines[0], '1234');
  t.equal(lines[1], '2345');
  t.match(r.stdout, /^Uid:\s+1234\s+1234\s+1234\s+1234$/m, 'real, effective, saved and fs uid');
  t.match(r.stdout, /^Gid:\s+2345\s+2345\s+2345\s+2345$/m);
  const groups = /^Groups:\s*(.*)$/m.exec(r.stdout)?.[1].trim().split(/\s+/).map(Number).sort((a, b) => a - b);
  t.same(groups, [10, 20, 30], 'exactly the additional gids');

  const r2 = runIn(t, koci, ['sh', '-c', 'grep -E "^Groups:" /proc/self/status'], (s) => {
    s.process!.user = { uid: 0, gid: 0 };
  });
  t.equal(r2.status, 0, r2.stderr);
  t.match(r2.stdout, /^Groups:\s*$/m, 'no additionalGids: no supplementary groups (none inherited from the caller)');
});

t.test('umask', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['sh', '-c', 'umask'], (s) => {
    s.process!.user.umask = 0o077;
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '0077\n');
  const r2 = runIn(t, koci, ['sh', '-c', 'umask']);
  t.equal(r2.stdout, '0022\n', 'default umask 0022');
});

t.test('rlimits', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['sh', '-c', 'ulimit -n; ulimit -Hn; grep "Max open files" /proc/self/limits; grep "Max core" /proc/self/limits'], (s) => {
    s.process!.rlimits = [
      { type: 'RLIMIT_NOFILE', soft: 123, hard: 456 },
      { type: 'RLIMIT_CORE', soft: 0, hard: 4096 },
    ];
  });
  t.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  t.equal(lines[0], '123', 'soft NOFILE');
  t.equal(lines[1], '456', 'hard NOFILE');
  t.match(lines[2], /^Max open files\s+123\s+456\s+files/);
  t.match(lines[3], /^Max core file size\s+0\s+4096\s+bytes/);
});

t.test('oomScoreAdj', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['cat', '/proc/self/oom_score_adj'], (s) => {
    s.process!.oomScoreAdj = 321;
  });
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, '321\n');
  const own = readFileSync('/proc/self/oom_score_adj', 'utf8').trim();
  const r2 = runIn(t, koci, ['cat', '/proc/self/oom_score_adj']);
  t.equal(r2.stdout, `${own}\n`, 'unset: inherited from the caller');
});

t.test('noNewPrivileges', { skip }, async (t) => {
  const koci = kociCli(t);
  const r = runIn(t, koci, ['grep', 'NoNewPrivs', '/proc/self/status'], (s) => {
    s.process!.noNewPrivileges = true;
  });
  t.equal(r.status, 0, r.stderr);
  t.match(r.stdout, /^NoNewPrivs:\s+1$/m);
  const own = /^NoNewPrivs:\s+(\d)/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  if (own === '1') {
    t.comment('skipping noNewPrivileges=false: this test process already has no_new_privs set (it is inherited)');
    return;
  }
  const r2 = runIn(t, koci, ['grep', 'NoNewPrivs', '/proc/self/status'], (s) => {
    s.process!.noNewPrivileges = false;
  });
  t.equal(r2.status, 0, r2.stderr);
  t.match(r2.stdout, /^NoNewPrivs:\s+0$/m);
});

t.test('args are passed verbatim', { skip }, async (t) => {
  const koci = kociCli(t);
  const weird = ['a b', '  two  spaces  ', '', "it's", '"q"', '$HOME', '*', 'tab\there', 'né'];
  const r = runIn(t, koci, ['sh', '-c', 'for a in "$@"; do printf "[%s]\\n" "$a"; done', 'argv0', ...weird]);
  t.equal(r.status, 0, r.stderr);
  t.equal(r.stdout, weird.map((w) => `[${w}]\n`).join(''));
});

t.test("stdio is the caller's and no other fd passes", { skip }, async (t) => {
  const io = mkdtempSync(join(tmpdir(), 'koci-fds-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const root = mkdtempSync(join(tmpdir(), 'koci-root-'));
  t.teardown(() => rmSync(root, { recursive: true, force: true }));
  writeFileSync(join(io, 'in'), 'from stdin\n');
  const b = makeBundle(t, ['sh', '-c', 'cat; echo to-stderr >&2; ls /proc/self/fd']);
  const fds = [openSync(join(io, 'in'), 'r'), openSync(join(io, 'out'), 'w'), openSync(join(io, 'err'), 'w'), openSync(join(io, 'extra'), 'w'), openSync(join(io, 'extra2'), 'w')];
  let r;
  try {
    // fds 3 and 4 are open in koci: they must not reach the container without --preserve-fds
    r = spawnSync(KOCI, ['--root', root, 'run', '--bundle', b.dir, uniqueId('fds')], { stdio: fds, timeout: 30_000 });
  } finally {
    fds.forEach((fd) => closeSync(fd));
  }
  const out = readFileSync(join(io, 'out'), 'utf8');
  const err = readFileSync(join(io, 'err'), 'utf8');
  t.equal(r.status, 0, err);
  t.equal(err, 'to-stderr\n', 'stderr is the caller stderr');
  const [first, ...fdLines] = out.split('\n');
  t.equal(first, 'from stdin', 'stdin is the caller stdin');
  // 0 1 2, and the one ls opened to read the directory
  t.same(fdLines.filter(Boolean), ['0', '1', '2', '3'], 'only stdio (and the fd ls itself opened)');

  // the same through `node main.js` (koci re-execs itself --single-threaded: stdio must survive that)
  const fds2 = [openSync(join(io, 'in'), 'r'), openSync(join(io, 'out2'), 'w'), openSync(join(io, 'err2'), 'w')];
  try {
    r = spawnSync(process.execPath, [KOCI, '--root', root, 'run', '--bundle', b.dir, uniqueId('fds')], { stdio: fds2, timeout: 30_000 });
  } finally {
    fds2.forEach((fd) => closeSync(fd));
  }
  t.equal(r.status, 0, readFileSync(join(io, 'err2'), 'utf8'));
  t.equal(readFileSync(join(io, 'out2'), 'utf8'), 'from stdin\n0\n1\n2\n3\n', 'stdio survives the re-exec');
  t.equal(readFileSync(join(io, 'err2'), 'utf8'), 'to-stderr\n');
});

t.test('run propagates the exit status', { skip }, async (t) => {
  const koci = kociCli(t);
  for (const code of [0, 1, 42, 255]) {
    const r = runIn(t, koci, ['sh', '-c', `exit ${code}`]);
    t.equal(r.status, code, `exit ${code}`);
  }
  // killed by a signal: run exits 128+signal (the init is PID 1 of its namespace, so the kill comes from outside)
  const b = makeBundle(t, ['sleep', '30']);
  const id = uniqueId('sig');
  const child = spawn(KOCI, ['--root', koci.root, 'run', '--bundle', b.dir, id], { stdio: 'ignore' });
  t.teardown(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  const exited = new Promise<number | null>((res) => child.on('exit', (code) => res(code)));
  let running = false;
  for (let i = 0; i < 200 && !running; i++) {
    await new Promise((r) => setTimeout(r, 25));
    const s = koci(['state', id]);
    running = s.status === 0 && JSON.parse(s.stdout).status === 'running';
  }
  t.ok(running, 'the container is running');
  t.equal(koci(['kill', id, 'KILL']).status, 0);
  t.equal(await exited, 128 + 9, 'killed by SIGKILL: run exits 137');
  t.same(koci(['list', '--quiet']).stdout.trim(), '', 'run deleted every container');
});

t.test('args[0] not found fails create and leaves nothing', { skip }, async (t) => {
  const koci = kociCli(t);
  for (const [arg0, msg] of [
    ['/no/such/program', /\/no\/such\/program.*no such executable/],
    ['no-such-command', /executable file "no-such-command" not found in \$PATH/],
    ['/etc/passwd', /\/etc\/passwd.*no such executable/],
  ] as const) {
    const b = makeBundle(t, [arg0]);
    const id = uniqueId('noexec');
    const before = leftovers(koci.root, [b.dir], id);
    const r = koci(['create', '--bundle', b.dir, id]);
    t.equal(r.status, 1, `create of ${arg0} fails`);
    t.match(r.stderr, msg);
    t.equal(r.stderr.trim().split('\n').length, 1, 'one line');
    t.same(leftovers(koci.root, [b.dir], id), before, 'nothing left behind');
    t.not(koci(['state', id]).status, 0);
  }
});

t.test('the init is PID 1 of its pid namespace and state.pid is its host pid', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '30']);
  const id = uniqueId('pid');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);
  const st = JSON.parse(koci(['state', id]).stdout);
  // the init is PID 1 of its own pid namespace
  const status = readFileSync(`/proc/${st.pid}/status`, 'utf8');
  t.match(status, /^NSpid:\s+\d+\s+1$/m, 'init is pid 1 in the container');
  t.equal(koci(['delete', '--force', id]).status, 0);
  t.notOk(existsSync(join(koci.root, id)));
});
