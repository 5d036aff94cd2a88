/**
 * Ten containers created, started and deleted at the same time, each with its
 * own hostname: no lost state, no crossed wires, nothing left after. And
 * parallel commands on one container ID: the per-container lock lets exactly
 * one create and one start through.
 * Commands run as async child processes with stdio to files (a created
 * container holds the caller's stdio open, so pipes would never see EOF).
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { KOCI, type Koci, kociCli, makeBundle, rootSkipReason, stateOf, uniqueId, type Bundle } from './helpers/fixtures';
import { leftovers } from './helpers/leftovers';

const skip = rootSkipReason();
if (skip) t.comment(`skipping parallel tests: ${skip}`);

const N = 10;

/** koci commands run as async child processes on one state root; stdout to `out` (the container's stdout too), stderr to a file */
function asyncKoci(t: { teardown(fn: () => void): void }, root: string) {
  const io = mkdtempSync(join(tmpdir(), 'koci-par-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  let n = 0;
  return (args: string[], out?: string) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const err = join(io, `${n++}.err`);
      const fds = [openSync(out ?? join(io, `${n}.out`), 'a'), openSync(err, 'w')];
      const child = spawn(KOCI, ['--root', root, ...args], { stdio: ['ignore', fds[0], fds[1]] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (status) => {
        clearTimeout(timer);
        fds.forEach((fd) => closeSync(fd));
        resolve({ status, stderr: readFileSync(err, 'utf8') });
      });
    });
}

/** id -> status of every container, in one koci call */
const statuses = (koci: Koci): Record<string, string> =>
  Object.fromEntries((JSON.parse(koci(['list', '--format', 'json']).stdout || '[]') as Array<{ id: string; status: string }>).map((c) => [c.id, c.status]));

interface Box {
  id: string;
  b: Bundle;
  out: string;
}

t.test(`${N} containers in parallel`, { skip }, async (t) => {
  const koci = kociCli(t);
  const io = mkdtempSync(join(tmpdir(), 'koci-par-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const kociAsync = asyncKoci(t, koci.root);

  const boxes: Box[] = [];
  for (let i = 0; i < N; i++) {
    const b = makeBundle(t, ['sh', '-c', 'hostname; while [ ! -e /tmp/go ]; do sleep 0.02; done; echo bye'], (s) => {
      s.hostname = `par-${i}`;
      s.root!.readonly = false;
    });
    boxes.push({ id: uniqueId('par'), b, out: join(io, `c${i}.out`) });
  }
  const marker = `-${process.pid}-`;
  const before = leftovers(koci.root, boxes.map((x) => x.b.dir), marker);

  const created = await Promise.all(boxes.map((x) => kociAsync(['create', '--bundle', x.b.dir, x.id], x.out)));
  created.forEach((r, i) => t.equal(r.status, 0, `create ${i}: ${r.stderr}`));
  const pids = new Set<number>();
  for (const x of boxes) {
    const st = stateOf(koci, x.id);
    t.equal(st.status, 'created', `${x.id} created`);
    pids.add(st.pid as number);
  }
  t.equal(pids.size, N, 'every container has its own init');
  t.same(Object.keys(statuses(koci)).sort(), boxes.map((x) => x.id).sort(), 'list shows all of them');

  const started = await Promise.all(boxes.map((x) => kociAsync(['start', x.id])));
  started.forEach((r, i) => t.equal(r.status, 0, `start ${i}: ${r.stderr}`));
  const running = statuses(koci);
  for (const x of boxes) t.equal(running[x.id], 'running', `${x.id} running`);

  // each printed its own hostname
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !boxes.every((x) => readFileSync(x.out, 'utf8').includes('\n'))) await new Promise((r) => setTimeout(r, 20));
  boxes.forEach((x, i) => t.equal(readFileSync(x.out, 'utf8'), `par-${i}\n`, `container ${i} has hostname par-${i}`));

  for (const x of boxes) writeFileSync(join(x.b.rootfs, 'tmp', 'go'), '');
  const stopDeadline = Date.now() + 10_000;
  let st = statuses(koci);
  while (Date.now() < stopDeadline && !boxes.every((x) => st[x.id] === 'stopped')) {
    await new Promise((r) => setTimeout(r, 25));
    st = statuses(koci);
  }
  for (const x of boxes) t.equal(st[x.id], 'stopped', `${x.id} stopped`);
  boxes.forEach((x, i) => t.equal(readFileSync(x.out, 'utf8'), `par-${i}\nbye\n`, `container ${i} ran to its end`));

  const deleted = await Promise.all(boxes.map((x) => kociAsync(['delete', x.id])));
  deleted.forEach((r, i) => t.equal(r.status, 0, `delete ${i}: ${r.stderr}`));
  for (const x of boxes) t.notOk(existsSync(join(koci.root, x.id)), `${x.id} state removed`);
  t.same(leftovers(koci.root, boxes.map((x) => x.b.dir), marker), before, 'nothing left: state, cgroups, mounts, processes');
});

t.test(`${N} parallel runs and a parallel force-delete of running containers`, { skip }, async (t) => {
  const koci = kociCli(t);
  const io = mkdtempSync(join(tmpdir(), 'koci-par-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const run = (args: string[], out: string) =>
    new Promise<number | null>((resolve) => {
      const fd = openSync(out, 'w');
      const child = spawn(KOCI, ['--root', koci.root, ...args], { stdio: ['ignore', fd, fd] });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('exit', (status) => {
        clearTimeout(timer);
        closeSync(fd);
        resolve(status);
      });
    });
  const boxes = Array.from({ length: N }, (_, i) => ({
    id: uniqueId('prun'),
    b: makeBundle(t, ['sh', '-c', 'hostname; exec sleep 60'], (s) => (s.hostname = `prun-${i}`)),
    out: join(io, `${i}.out`),
  }));
  const marker = `-${process.pid}-`;
  const before = leftovers(koci.root, boxes.map((x) => x.b.dir), marker);
  const codes = await Promise.all(boxes.map((x) => run(['run', '--detach', '--bundle', x.b.dir, x.id], x.out)));
  codes.forEach((c, i) => t.equal(c, 0, `run -d ${i}: ${readFileSync(boxes[i].out, 'utf8')}`));
  for (const x of boxes) t.equal(stateOf(koci, x.id).status, 'running');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !boxes.every((x) => readFileSync(x.out, 'utf8').includes('\n'))) await new Promise((r) => setTimeout(r, 20));
  boxes.forEach((x, i) => t.equal(readFileSync(x.out, 'utf8'), `prun-${i}\n`, `hostname prun-${i}`));
  const del = await Promise.all(boxes.map((x) => run(['delete', '--force', x.id], join(io, `${x.id}.del`))));
  del.forEach((c, i) => t.equal(c, 0, `delete --force ${i}`));
  t.same(leftovers(koci.root, boxes.map((x) => x.b.dir), marker), before, 'nothing left');
});

t.test(`one container ID, ${N} parallel creates, then ${N} parallel starts: the lock lets exactly one of each through`, { skip }, async (t) => {
  const koci = kociCli(t);
  const kociAsync = asyncKoci(t, koci.root);
  const io = mkdtempSync(join(tmpdir(), 'koci-par-'));
  t.teardown(() => rmSync(io, { recursive: true, force: true }));
  const out = join(io, 'container.out');
  // every create is a different bundle (a hostname of its own), so the winner is known
  const bundles = Array.from({ length: N }, (_, i) =>
    makeBundle(t, ['sh', '-c', 'echo "started $(hostname)"; exec sleep 1000'], (s) => {
      s.hostname = `same-${i}`;
      // a slow start (the startContainer hook runs while start waits for the exec): the other starts come while it lasts
      s.hooks = { startContainer: [{ path: '/bin/sh', args: ['sh', '-c', 'sleep 0.5'] }] };
    }),
  );
  const id = uniqueId('same');
  const marker = `-${process.pid}-`;
  const before = leftovers(koci.root, bundles.map((b) => b.dir), marker);

  const creates = await Promise.all(bundles.map((b) => kociAsync(['create', '--bundle', b.dir, id], out)));
  const won = creates.flatMap((r, i) => (r.status === 0 ? [i] : []));
  t.equal(won.length, 1, `exactly one create succeeds (exit codes: ${creates.map((r) => r.status).join(' ')})`);
  creates.forEach((r, i) => {
    if (r.status !== 0) t.equal(r.stderr, `koci: container ${JSON.stringify(id)} already exists\n`, `create ${i} fails with "already exists"`);
  });
  if (won.length !== 1) return;
  const winner = bundles[won[0]];
  const st = stateOf(koci, id);
  t.equal(st.status, 'created', "the losers' failures left the winner's container created");
  t.equal(st.bundle, winner.dir, "state names the winner's bundle");
  t.ok(existsSync(`/proc/${st.pid}`), 'its init is alive');
  t.same(Object.keys(statuses(koci)), [id], 'one container in list');

  const starts = await Promise.all(Array.from({ length: N }, () => kociAsync(['start', id])));
  const startWon = starts.filter((r) => r.status === 0).length;
  t.equal(startWon, 1, `exactly one start succeeds (${startWon})`);
  starts.forEach((r, i) => {
    if (r.status !== 0) t.match(r.stderr, new RegExp(`^koci: cannot start container "${id}" in status running`), `start ${i} is refused: the container is already running`);
  });
  t.equal(stateOf(koci, id).status, 'running');
  const deadline = Date.now() + 10_000;
  while (Date.now() < deadline && !readFileSync(out, 'utf8').includes('\n')) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 100)); // room for a second start's output, if there were one
  t.equal(readFileSync(out, 'utf8'), `started same-${won[0]}\n`, "the winner's process ran, once");

  // racing deletes: one removes it, the others find it gone, which --force does not call an error (as runc)
  const del = await Promise.all(Array.from({ length: 3 }, () => kociAsync(['delete', '--force', id])));
  del.forEach((r, i) => t.equal(r.status, 0, `parallel delete --force ${i}: ${r.stderr}`));
  t.notOk(existsSync(join(koci.root, id)), 'state removed');
  t.notOk(existsSync(`/proc/${st.pid}`) && readFileSync(`/proc/${st.pid}/cmdline`, 'utf8').startsWith('sleep'), 'the container process is gone');
  t.same(leftovers(koci.root, bundles.map((b) => b.dir), marker), before, 'nothing left: state, cgroups, mounts, processes');
});
