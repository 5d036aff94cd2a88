/**
 * OCI hooks (runtime-spec config.md "POSIX-platform Hooks"): every kind runs
 * at its moment, in order, in the right namespaces, with the state on stdin,
 * its args and env; timeouts are enforced; a failing create-time hook fails
 * create and leaves nothing; failing poststart/poststop hooks only warn.
 */
import { chmodSync, existsSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import type { Hook, Hooks } from '../lib/spec/types';
import { kociCli, makeBundle, rootSkipReason, stateOf, uniqueId, type Bundle } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';
import { testRuntime } from './helpers/runtime';

const skip = rootSkipReason() ?? (existsSync('/bin/sh') ? undefined : 'no /bin/sh on the host for hook scripts');
if (skip) t.comment(`skipping hook tests: ${skip}`);

const KINDS = ['prestart', 'createRuntime', 'createContainer', 'startContainer', 'poststart', 'poststop'] as const;

/**
 * A host hook script (runs with the host's /bin/sh) that appends
 * "<name> <mnt ns> <pid ns> <$HOOKVAR>" to the log in the rootfs and saves its stdin.
 * Before pivot_root (createContainer) the host paths are still visible.
 */
function hostScript(b: Bundle): string {
  const p = join(b.dir, 'hook.sh');
  writeFileSync(
    p,
    `#!/bin/sh
name=$1
cat > "${b.dir}/$name.state"
env > "${b.dir}/$name.env"
echo "$name $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/pid) $HOOKVAR" >> "${b.rootfs}/hooklog"
exit \${2:-0}
`,
  );
  chmodSync(p, 0o755);
  return p;
}

/** the same, inside the rootfs (busybox sh), for startContainer whose path resolves in the container */
function containerScript(b: Bundle): string {
  writeFileSync(
    join(b.rootfs, 'hook.sh'),
    `#!/bin/sh
name=$1
cat > "/$name.state"
echo "$name $(readlink /proc/self/ns/mnt) $(readlink /proc/self/ns/pid) $HOOKVAR" >> /hooklog
exit \${2:-0}
`,
  );
  chmodSync(join(b.rootfs, 'hook.sh'), 0o755);
  return '/hook.sh';
}

function hook(path: string, name: string, extra: Partial<Hook> = {}, status = 0): Hook {
  return { path, args: [path, name, String(status)], env: [`HOOKVAR=var-${name}`, 'PATH=/usr/sbin:/usr/bin:/sbin:/bin'], ...extra };
}

function logLines(b: Bundle): string[][] {
  const p = join(b.rootfs, 'hooklog');
  return existsSync(p) ? readFileSync(p, 'utf8').split('\n').filter(Boolean).map((l) => l.split(' ')) : [];
}

const names = (b: Bundle) => logLines(b).map((l) => l[0]);

async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 20))) if (cond()) return true;
  return cond();
}

t.test('every hook kind at its moment, in order, in its namespaces, with state, args and env', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'echo process >> /hooklog']);
  b.spec.root!.readonly = false;
  const host = hostScript(b);
  const inside = containerScript(b);
  b.spec.hooks = {
    prestart: [hook(host, 'prestart'), hook(host, 'prestart2')],
    createRuntime: [hook(host, 'createRuntime')],
    createContainer: [hook(host, 'createContainer')],
    startContainer: [hook(inside, 'startContainer')],
    poststart: [hook(host, 'poststart')],
    poststop: [hook(host, 'poststop')],
  };
  b.spec.annotations = { 'org.example.k': 'v' };
  b.save();
  const id = uniqueId('hooks');
  const hostMnt = readlinkSync('/proc/self/ns/mnt');
  const hostPid = readlinkSync('/proc/self/ns/pid');

  const c = koci(['create', '--bundle', b.dir, id], { env: { ...process.env, KOCI_TEST_LEAK: 'leaked' } });
  t.equal(c.status, 0, `create: ${c.stderr}`);
  t.same(names(b), ['prestart', 'prestart2', 'createRuntime', 'createContainer'], 'create runs prestart, createRuntime, createContainer in order');
  const pid = stateOf(koci, id).pid as number;
  const ctrMnt = readlinkSync(`/proc/${pid}/ns/mnt`);
  const ctrPid = readlinkSync(`/proc/${pid}/ns/pid_for_children`);
  t.not(ctrMnt, hostMnt);

  t.equal(koci(['start', id]).status, 0, 'start');
  t.ok(await waitFor(() => names(b).includes('process')), 'the process ran');
  const afterStart = names(b);
  t.same(afterStart.slice(0, 5), ['prestart', 'prestart2', 'createRuntime', 'createContainer', 'startContainer'], 'startContainer runs at start');
  t.ok(afterStart.indexOf('process') > afterStart.indexOf('startContainer'), 'startContainer runs before the process');
  t.ok(afterStart.includes('poststart'), 'poststart ran before start returned');
  t.notOk(afterStart.includes('poststop'), 'poststop waits for delete');

  t.ok(await waitFor(() => stateOf(koci, id).status === 'stopped'), 'stopped');
  t.equal(koci(['delete', id]).status, 0, 'delete');
  const all = names(b);
  t.equal(all[all.length - 1], 'poststop', 'poststop runs at delete, last');
  t.equal(all.length, 8, 'every hook ran once');

  for (const [name, mnt, pidns, v] of logLines(b)) {
    if (name === 'process') continue;
    const inContainer = name === 'createContainer' || name === 'startContainer';
    t.equal(mnt, inContainer ? ctrMnt : hostMnt, `${name}: ${inContainer ? 'container' : 'runtime'} mount namespace`);
    t.equal(pidns, inContainer ? ctrPid : hostPid, `${name}: ${inContainer ? 'container' : 'runtime'} pid namespace`);
    t.equal(v, `var-${name}`, `${name}: its env and args`);
  }

  const expectStatus: Record<string, string> = {
    prestart: 'creating',
    createRuntime: 'creating',
    createContainer: 'creating',
    startContainer: 'created',
    poststart: 'running',
    poststop: 'stopped',
  };
  for (const name of KINDS) {
    const file = name === 'startContainer' ? join(b.rootfs, `${name}.state`) : join(b.dir, `${name}.state`);
    const st = JSON.parse(readFileSync(file, 'utf8'));
    t.equal(st.id, id, `${name}: state.id`);
    t.equal(st.bundle, b.dir, `${name}: state.bundle`);
    t.equal(st.ociVersion, b.spec.ociVersion, `${name}: state.ociVersion`);
    t.equal(st.status, expectStatus[name], `${name}: state.status ${expectStatus[name]}`);
    t.same(st.annotations, { 'org.example.k': 'v' }, `${name}: annotations`);
    // runtime-spec: in the container's namespaces, the pid as the container sees it (PID 1)
    const inContainer = name === 'createContainer' || name === 'startContainer';
    if (name !== 'poststop') t.equal(st.pid, inContainer ? 1 : pid, `${name}: state.pid is the init's${inContainer ? ' as the container sees it' : ''}`);
  }
  const env = readFileSync(join(b.dir, 'prestart.env'), 'utf8');
  t.match(env, /^HOOKVAR=var-prestart$/m, 'hook env is given');
  t.notMatch(env, /KOCI_TEST_LEAK/, "the runtime's environment does not leak into hooks");
});

t.test('without prestart or createRuntime hooks the init does not stop for them: createContainer still gets the state', { skip }, async (t) => {
  const koci = kociCli(t);
  const rt = testRuntime(t);
  for (const how of ['cli', 'library'] as const) {
    const b = makeBundle(t, ['true']);
    b.spec.annotations = { 'org.example.k': 'v' };
    b.spec.hooks = { createContainer: [hook(hostScript(b), 'createContainer')] };
    b.save();
    const id = uniqueId('cchook');
    if (how === 'cli') t.equal(koci(['run', '--bundle', b.dir, id]).status, 0, `${how}: run`);
    else t.equal((await rt.run(id, { bundle: b.dir, stdio: 'ignore' })).exitCode, 0, `${how}: run`);
    t.same(names(b), ['createContainer'], `${how}: the hook ran`);
    const st = JSON.parse(readFileSync(join(b.dir, 'createContainer.state'), 'utf8'));
    t.match(st, { ociVersion: b.spec.ociVersion, id, status: 'creating', bundle: b.dir, pid: 1, annotations: { 'org.example.k': 'v' } }, `${how}: with the state (pid as the container sees it)`);
  }
});

t.test('timeouts are enforced', { skip }, async (t) => {
  const koci = kociCli(t);
  for (const kind of ['prestart', 'createRuntime', 'createContainer'] as const) {
    const b = makeBundle(t);
    b.spec.hooks = { [kind]: [{ path: '/bin/sh', args: ['sh', '-c', 'sleep 30'], timeout: 1 }] } as Hooks;
    b.save();
    const id = uniqueId('tmo');
    const before = leftovers(koci.root, [b.dir], id);
    const start = Date.now();
    const r = koci(['create', '--bundle', b.dir, id]);
    const took = Date.now() - start;
    t.equal(r.status, 1, `${kind}: create fails`);
    t.match(r.stderr, new RegExp(`${kind} hook /bin/sh: timed out after 1s`), `${kind}: says it timed out`);
    t.ok(took < 10_000, `${kind}: gave up after the timeout (${took} ms)`);
    t.same(leftovers(koci.root, [b.dir], id), before, `${kind}: nothing left`);
  }
  // a hook that finishes within its timeout is fine
  const b = makeBundle(t);
  b.spec.hooks = { prestart: [{ path: '/bin/sh', args: ['sh', '-c', 'sleep 0.1'], timeout: 5 }] };
  b.save();
  const id = uniqueId('tmo');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0, 'in time: create succeeds');
  t.equal(koci(['delete', id]).status, 0);
});

t.test('a failing create-time hook fails create and leaves nothing behind', { skip }, async (t) => {
  const koci = kociCli(t);
  const cases: Array<[keyof Hooks, (b: Bundle) => Hook, RegExp]> = [
    ['prestart', (b) => hook(hostScript(b), 'prestart', {}, 3), /prestart hook .*hook\.sh: exited with status 3/],
    ['createRuntime', (b) => hook(hostScript(b), 'createRuntime', {}, 4), /createRuntime hook .*hook\.sh: exited with status 4/],
    ['createContainer', (b) => hook(hostScript(b), 'createContainer', {}, 5), /createContainer hook .*hook\.sh: exited with status 5/],
    ['prestart', () => ({ path: '/no/such/hook' }), /prestart hook \/no\/such\/hook: cannot run/],
    ['createContainer', () => ({ path: '/no/such/hook' }), /createContainer hook \/no\/such\/hook: cannot run/],
  ];
  for (const [kind, mk, msg] of cases) {
    const b = makeBundle(t, ['sh', '-c', 'echo process >> /hooklog']);
    b.spec.root!.readonly = false;
    const later = hook(hostScript(b), 'later');
    b.spec.hooks = { [kind]: [mk(b), later] } as Hooks;
    // a hook of the next kind must not run either
    if (kind === 'prestart') b.spec.hooks.createRuntime = [hook(hostScript(b), 'next')];
    if (kind !== 'createContainer') b.spec.hooks.createContainer = [hook(hostScript(b), 'next')];
    b.save();
    const id = uniqueId('hookfail');
    const before = leftovers(koci.root, [b.dir], id);
    const r = koci(['create', '--bundle', b.dir, id]);
    t.equal(r.status, 1, `${kind}: create fails`);
    t.match(r.stderr, msg, `${kind}: the message names the hook`);
    t.equal(r.stderr.trim().split('\n').length, 1, `${kind}: one line`);
    t.notOk(names(b).includes('later') || names(b).includes('next') || names(b).includes('process'), `${kind}: nothing after the failing hook ran`);
    t.same(leftovers(koci.root, [b.dir], id), before, `${kind}: no state, cgroup, mount or process left`);
    t.match(koci(['state', id]).stderr, /does not exist/);
  }
});

t.test('a failing poststart or poststop hook only warns, and the remaining hooks still run', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sleep', '30']);
  const host = hostScript(b);
  b.spec.hooks = {
    poststart: [hook(host, 'poststart', {}, 7), hook(host, 'poststart2')],
    poststop: [hook(host, 'poststop', {}, 8), hook(host, 'poststop2')],
  };
  b.save();
  const id = uniqueId('warn');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);
  const s = koci(['start', id]);
  t.equal(s.status, 0, 'start succeeds');
  t.match(s.stderr, /poststart hook .*hook\.sh: exited with status 7/, 'start warns');
  t.equal(stateOf(koci, id).status, 'running', 'the container keeps running');
  t.same(names(b), ['poststart', 'poststart2'], 'the next poststart hook still ran');
  const d = koci(['delete', '--force', id]);
  t.equal(d.status, 0, 'delete succeeds');
  t.match(d.stderr, /poststop hook .*hook\.sh: exited with status 8/, 'delete warns');
  t.same(names(b), ['poststart', 'poststart2', 'poststop', 'poststop2'], 'the next poststop hook still ran');
  t.not(koci(['state', id]).status, 0, 'deleted');
});

t.test('a failing startContainer hook stops the container before the process runs', { skip }, async (t) => {
  const koci = kociCli(t);
  const b = makeBundle(t, ['sh', '-c', 'echo process >> /hooklog']);
  b.spec.root!.readonly = false;
  b.spec.hooks = { startContainer: [hook(containerScript(b), 'startContainer', {}, 9)] };
  b.save();
  const id = uniqueId('startfail');
  t.equal(koci(['create', '--bundle', b.dir, id]).status, 0);
  koci(['start', id]);
  t.ok(await waitFor(() => stateOf(koci, id).status === 'stopped'), 'the container stops');
  t.same(names(b), ['startContainer'], 'the hook ran, the process did not');
  t.equal(koci(['delete', id]).status, 0);
});
