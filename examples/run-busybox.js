'use strict';
/**
 * koci as a library: run a container from a bundle, capture its output,
 * then drive a second one through the whole lifecycle by hand.
 *
 *   npm run demo                      # builds examples/bundle once
 *   sudo node examples/run-busybox.js [bundle-dir]
 */
const path = require('node:path');
const { Runtime, ContainerNotFoundError } = require('koci');

async function main() {
  const bundle = path.resolve(process.argv[2] ?? path.join(__dirname, 'bundle'));
  const rt = new Runtime({ root: '/run/koci', onWarning: (m) => console.warn('warning:', m) });

  // create + start + wait + delete in one call; the process's args come from config.json
  const r = await rt.run(`example-${process.pid}`, { bundle, capture: true });
  console.log(`run: exit code ${r.exitCode}, ${r.stdout.split('\n').length - 1} lines of output`);

  // the same, step by step (stdio: 'ignore' keeps the container off our terminal)
  const id = `example-${process.pid}-2`;
  const created = await rt.create(id, { bundle, stdio: 'ignore' });
  console.log(`create: ${created.status}, init pid ${created.pid}`);
  console.log(`start: ${(await rt.start(id)).status}`);
  await rt.kill(id, 'SIGKILL').catch(() => {}); // it may have finished already
  while ((await rt.state(id)).status !== 'stopped') await new Promise((res) => setTimeout(res, 10));
  await rt.delete(id);
  try {
    await rt.state(id);
  } catch (e) {
    if (e instanceof ContainerNotFoundError) console.log(`delete: ${e.message}`);
    else throw e;
  }
}

main().catch((e) => {
  console.error(`${e.name}: ${e.message}`);
  process.exit(1);
});
