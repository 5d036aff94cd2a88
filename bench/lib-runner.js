'use strict';
/**
 * Bench helper (issue 7): N containers run back to back through the library
 * API from this one Node process. Prints one JSON line:
 * { ms: [per-container wall times], failed: n }.
 * Usage: node bench/lib-runner.js ROOT BUNDLE ID-PREFIX COUNT
 */
const path = require('node:path');
const { Runtime } = require(path.resolve(__dirname, '..', 'dist', 'lib', 'index.js'));

async function main() {
  const [root, bundle, prefix, count] = process.argv.slice(2);
  const rt = new Runtime({ root });
  const ms = [];
  let failed = 0;
  for (let i = 0; i < Number(count); i++) {
    const t0 = process.hrtime.bigint();
    try {
      const r = await rt.run(`${prefix}-${i}`, { bundle, stdio: 'ignore' });
      if (r.exitCode !== 0) failed++;
    } catch (e) {
      failed++;
      if (failed === 1) process.stderr.write(`lib-runner: ${e && e.message}\n`);
    }
    ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  process.stdout.write(JSON.stringify({ ms, failed }) + '\n');
}
main().catch((e) => {
  process.stderr.write(`lib-runner: ${e && e.stack}\n`);
  process.exit(1);
});
