'use strict';
/**
 * A busybox rootfs for the demo and the tests, built from Debian's
 * busybox-static package (downloaded with apt-get when not cached; installed
 * with apt-get as a last resort). Result: .cache/busybox-rootfs, reused.
 * This is test/demo tooling: koci itself never runs busybox or apt.
 */
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');

const root = path.resolve(__dirname, '..');
const cache = path.join(root, '.cache');
const rootfs = path.join(cache, 'busybox-rootfs');

function findBusybox() {
  const cached = path.join(cache, 'busybox-static', 'bin', 'busybox');
  if (fs.existsSync(cached)) return cached;
  fs.mkdirSync(cache, { recursive: true });
  const dl = fs.mkdtempSync(path.join(cache, 'dl-'));
  try {
    // apt-get download writes into the cwd; _apt cannot write there as root, which only costs a warning
    const download = () => execFileSync('apt-get', ['download', 'busybox-static'], { cwd: dl, stdio: ['ignore', 'ignore', 'pipe'] });
    try {
      download();
    } catch {
      // a fresh machine may have no package lists yet
      execFileSync('apt-get', ['update', '-q'], { stdio: ['ignore', 'ignore', 'inherit'] });
      download();
    }
    const deb = fs.readdirSync(dl).find((f) => f.endsWith('.deb'));
    execFileSync('dpkg-deb', ['-x', path.join(dl, deb), path.join(cache, 'busybox-static')]);
    return cached;
  } catch (e) {
    // offline apt cache or no download rights: install the package instead
    if (!fs.existsSync('/bin/busybox')) {
      process.stderr.write(`busybox-static download failed (${e.message.split('\n')[0]}); installing it with apt-get\n`);
      execFileSync('apt-get', ['install', '-y', '-q', 'busybox-static'], { stdio: 'inherit' });
    }
    return '/bin/busybox';
  } finally {
    fs.rmSync(dl, { recursive: true, force: true });
  }
}

function buildRootfs() {
  if (fs.existsSync(path.join(rootfs, 'bin', 'sh'))) return rootfs;
  const busybox = findBusybox();
  const tmp = `${rootfs}.tmp-${process.pid}`;
  fs.rmSync(tmp, { recursive: true, force: true });
  for (const d of ['bin', 'proc', 'sys', 'dev', 'etc', 'tmp', 'root', 'var', 'run']) fs.mkdirSync(path.join(tmp, d), { recursive: true });
  fs.copyFileSync(busybox, path.join(tmp, 'bin', 'busybox'));
  fs.chmodSync(path.join(tmp, 'bin', 'busybox'), 0o755);
  const applets = execFileSync(busybox, ['--list'], { encoding: 'utf8' }).split('\n').filter((a) => a && a !== 'busybox');
  for (const a of applets) fs.symlinkSync('busybox', path.join(tmp, 'bin', a));
  fs.chmodSync(path.join(tmp, 'tmp'), 0o1777);
  fs.writeFileSync(path.join(tmp, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n');
  fs.writeFileSync(path.join(tmp, 'etc', 'group'), 'root:x:0:\ntty:x:5:\nnogroup:x:65534:\n');
  fs.renameSync(tmp, rootfs);
  return rootfs;
}

module.exports = { buildRootfs, rootfs };

if (require.main === module) process.stdout.write(buildRootfs() + '\n');
