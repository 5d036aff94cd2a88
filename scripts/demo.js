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
const t0 = process.hrtime.bigint();
const status = kociRun(['--root', '/run/koci', 'run', '--bundle', bundle, `demo-${process.pid}`]);
const ms = Number(process.hrtime.bigint() - t0) / 1e6;
// check, not claim, that nothing of the container is left
const left = [];
if (fs.existsSync(`/run/koci/demo-${process.pid}`)) left.push('its state dir');
if (fs.readFileSync('/proc/self/mountinfo', 'utf8').includes(bundle)) left.push('a mount');
process.stdout.write(
  `== container exited with status ${status} after ${ms.toFixed(0)} ms; ` +
    (left.length ? `LEFT BEHIND: ${left.join(', ')} ==\n` : 'no state, mount or process of it is left ==\n'),
);
if (left.length) process.exit(1);
process.exit(status ?? 1);
