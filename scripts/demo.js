'use strict';
/**
 * npm run demo: build a busybox bundle under examples/bundle (rootfs from
 * Debian's busybox-static), write its config.json with `koci spec`, and run
 * a container that prints its isolated view of the machine.
 */
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { buildRootfs } = require('./busybox-rootfs');

const root = path.resolve(__dirname, '..');
const koci = path.join(root, 'dist', 'lib', 'cli', 'main.js');
const bundle = path.join(root, 'examples', 'bundle');

if (process.getuid() !== 0) {
  process.stderr.write('demo: koci needs root to create namespaces, mounts and cgroups (try: sudo npm run demo)\n');
  process.exit(1);
}

const cached = buildRootfs();
fs.rmSync(bundle, { recursive: true, force: true });
fs.mkdirSync(bundle, { recursive: true });
fs.cpSync(cached, path.join(bundle, 'rootfs'), { recursive: true, verbatimSymlinks: true });

const kociRun = (args) => spawnSync(koci, args, { stdio: 'inherit' }).status;
if (kociRun(['spec', '--bundle', bundle]) !== 0) process.exit(1);

// the default config asks for a terminal; the demo prints to ours instead
const configPath = path.join(bundle, 'config.json');
const config = JSON.parse(fs.readFileSync(configPath, 'utf8'));
config.process.terminal = false;
config.process.args = [
  'sh',
  '-c',
  [
    'echo "== inside a koci container =="',
    'echo "my pid: $$"',
    'echo "hostname: $(hostname)"',
    'echo "processes I can see:"; ps -o pid,comm',
    'echo "my mounts:"; cat /proc/self/mounts',
  ].join('; '),
];
fs.writeFileSync(configPath, JSON.stringify(config, null, 2));

process.stdout.write(`== host: pid ${process.pid}, hostname ${require('node:os').hostname()} ==\n`);
process.stdout.write(`$ koci run --bundle ${path.relative(root, bundle)} demo-${process.pid}\n`);
// the init's PID, to look for it afterwards (outside the bundle: nothing of the demo's own stays in it)
const pidFile = path.join(fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'koci-demo-')), 'init.pid');
const t0 = process.hrtime.bigint();
const status = kociRun(['--root', '/run/koci', 'run', '--pid-file', pidFile, '--bundle', bundle, `demo-${process.pid}`]);
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
// check, not claim, that nothing of the container is left
const left = [];
if (fs.existsSync(`/run/koci/demo-${process.pid}`)) left.push('its state dir');
if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(bundle)) left.push('a mount');
const initPid = fs.existsSync(pidFile) ? Number(fs.readFileSync(pidFile, 'utf8')) : undefined;
fs.rmSync(path.dirname(pidFile), { recursive: true, force: true });
if (initPid === undefined) {
  if (status === 0) left.push('no pid file, so its process could not be checked');
} else if (rootedIn(initPid, bundle)) {
  left.push(`its init process (pid ${initPid})`);
}
// and no other process whose root or cwd is in the bundle (a child the init left running)
const others = fs
  .readdirSync('/proc')
  .filter((n) => /^\d+$/.test(n) && Number(n) !== initPid && rootedIn(Number(n), bundle));
if (others.length) left.push(`processes ${others.join(', ')}`);
process.stdout.write(
  `== container exited with status ${status} after ${ms.toFixed(0)} ms; ` +
    (left.length ? `LEFT BEHIND: ${left.join(', ')} ==\n` : 'no state, mount or process of it is left ==\n'),
);
if (left.length) process.exit(1);
process.exit(status ?? 1);

/** whether process `pid` exists and has its root or cwd in `dir` (a recycled PID elsewhere is not the container's) */
function rootedIn(pid, dir) {
  for (const link of ['root', 'cwd']) {
    try {
      const target = fs.readlinkSync(`/proc/${pid}/${link}`);
      if (target === dir || target.startsWith(dir + '/')) return true;
    } catch {
      /* gone, or a kernel thread */
    }
  }
  return false;
}
