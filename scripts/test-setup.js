'use strict';
/** Everything the test suite needs before tap starts: the busybox rootfs (from Debian's busybox-static). */
const { buildRootfs } = require('./busybox-rootfs');
const dir = buildRootfs();
process.stdout.write(`test setup: busybox rootfs at ${dir}\n`);
