#!/usr/bin/env node
'use strict';
/**
 * Dev tool: refresh the vendored official runtime-spec JSON schemas in
 * schemas/ from Debian's golang-github-opencontainers-specs-dev package, and
 * record where they came from in schemas/PROVENANCE.md.
 *
 * Debian is the source (not a git checkout) because its archive is signed and
 * versioned, which makes the provenance reproducible: same package version,
 * same sha256.
 *
 * Needs apt-get and dpkg-deb (it shells out on purpose; it never runs at
 * container run time). Pass --version=<debian version> to pin one.
 */
const { execFileSync } = require('node:child_process');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const PACKAGE = 'golang-github-opencontainers-specs-dev';
const SCHEMA_DIR_IN_DEB = 'usr/share/gocode/src/github.com/opencontainers/runtime-spec/schema';
const VERSION_GO_IN_DEB = 'usr/share/gocode/src/github.com/opencontainers/runtime-spec/specs-go/version.go';
const COPYRIGHT_IN_DEB = `usr/share/doc/${PACKAGE}/copyright`;
// Debian's copyright file points here for the full license text.
const APACHE_TEXT = '/usr/share/common-licenses/Apache-2.0';

const root = path.resolve(__dirname, '..');
const outDir = path.join(root, 'schemas');
// koci's own files in schemas/: never deleted or overwritten by this script.
const KOCI_DESCRIPTIONS = {
  'koci-extensions.json': 'config.json fields added by runtime-spec 1.1.0-1.3.0 (draft-04), written by koci from the spec text',
  'features-schema-koci.json': 'the `features` document of runtime-spec 1.1+ (draft-04), written by koci from the spec text',
};
const KOCI_FILES = new Set(Object.keys(KOCI_DESCRIPTIONS));

function sha256(file) {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function run(cmd, args, cwd) {
  return execFileSync(cmd, args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function main() {
  const pin = process.argv.find((a) => a.startsWith('--version='));
  const target = pin ? `${PACKAGE}=${pin.slice('--version='.length)}` : PACKAGE;

  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'koci-schemas-'));
  try {
    run('apt-get', ['download', target], tmp);
    const debs = fs.readdirSync(tmp).filter((f) => f.endsWith('.deb'));
    if (debs.length !== 1) throw new Error(`expected one .deb in ${tmp}, found ${debs.join(', ') || 'none'}`);
    const deb = path.join(tmp, debs[0]);
    const debVersion = run('dpkg-deb', ['-f', deb, 'Version']).trim();
    const debSha = sha256(deb);

    const extracted = path.join(tmp, 'x');
    run('dpkg-deb', ['-x', deb, extracted]);
    const schemaDir = path.join(extracted, SCHEMA_DIR_IN_DEB);
    if (!fs.existsSync(schemaDir)) throw new Error(`no runtime-spec schema directory in ${debs[0]} at ${SCHEMA_DIR_IN_DEB}`);

    const upstream = upstreamVersion(path.join(extracted, VERSION_GO_IN_DEB));

    // Replace the official files wholesale so a file dropped upstream does not linger.
    fs.mkdirSync(outDir, { recursive: true });
    for (const f of fs.readdirSync(outDir)) {
      if (f.endsWith('.json') && !KOCI_FILES.has(f)) fs.rmSync(path.join(outDir, f));
    }
    const files = fs.readdirSync(schemaDir).filter((f) => f.endsWith('.json')).sort();
    for (const f of files) {
      if (KOCI_FILES.has(f)) throw new Error(`upstream now ships ${f}, which clashes with a koci file name`);
      fs.copyFileSync(path.join(schemaDir, f), path.join(outDir, f));
    }

    writeLicense(path.join(extracted, COPYRIGHT_IN_DEB));
    writeProvenance({ debFile: debs[0], debVersion, debSha, upstream, files });
    process.stdout.write(`schemas: ${files.length} official files from ${PACKAGE} ${debVersion} (sha256 ${debSha})\n`);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
}

/** Debian's "1.0.2.118.g5cfc4c3-1" is git-describe "1.0.2-118-g5cfc4c3" */
function gitDescribe(debVersion) {
  const m = /^(\d+\.\d+\.\d+)\.(\d+)\.g([0-9a-f]+)-[^-]+$/.exec(debVersion);
  return m ? `${m[1]}-${m[2]}-g${m[3]}` : debVersion;
}

/** "1.0.2-dev" from the package's own specs-go/version.go */
function upstreamVersion(versionGo) {
  const src = fs.readFileSync(versionGo, 'utf8');
  const num = (name) => {
    const m = new RegExp(`${name}\\s*=\\s*(\\d+)`).exec(src);
    if (!m) throw new Error(`cannot read ${name} from ${versionGo}`);
    return m[1];
  };
  const dev = /VersionDev\s*=\s*"([^"]*)"/.exec(src);
  return `${num('VersionMajor')}.${num('VersionMinor')}.${num('VersionPatch')}${dev ? dev[1] : ''}`;
}

function writeLicense(copyrightFile) {
  let text = '';
  text += `The official runtime-spec schema files in this directory (see PROVENANCE.md)\n`;
  text += `are Copyright 2015 The Linux Foundation, licensed under the Apache License 2.0.\n`;
  text += `koci's own schema files here are under koci's license (Apache-2.0).\n\n`;
  text += `==== Debian copyright file of ${PACKAGE} ====\n\n`;
  text += fs.readFileSync(copyrightFile, 'utf8');
  if (fs.existsSync(APACHE_TEXT)) {
    text += `\n==== Full text of the Apache License 2.0 (${APACHE_TEXT}) ====\n\n`;
    text += fs.readFileSync(APACHE_TEXT, 'utf8');
  }
  fs.writeFileSync(path.join(outDir, 'LICENSE'), text);
}

function writeProvenance({ debFile, debVersion, debSha, upstream, files }) {
  const rows = files.map((f) => `| ${f} | \`${sha256(path.join(outDir, f))}\` |`).join('\n');
  const kociRows = Object.entries(KOCI_DESCRIPTIONS)
    .filter(([f]) => fs.existsSync(path.join(outDir, f)))
    .map(([f, what]) => `| ${f} | ${what} |`)
    .join('\n');
  const md = `# Provenance of schemas/

Generated by \`npm run schemas:update\` (scripts/schemas-update.js). Do not edit
the official files by hand; rerun the script.

## Official files

- Debian package: \`${PACKAGE}\`
- Debian version: \`${debVersion}\`
- Package file: \`${debFile}\`, sha256 \`${debSha}\`
- Taken from: \`/${SCHEMA_DIR_IN_DEB}/\` inside the package
- Upstream: https://github.com/opencontainers/runtime-spec, snapshot \`${gitDescribe(debVersion)}\`
  (specs-go/version.go in the package says \`${upstream}\`): a development
  snapshot after the v1.0.2 tag and before v1.1.0-rc.1. It already has mount
  uidMappings/gidMappings, personality, cpu idle/burst, memory checkBeforeUpdate,
  seccomp flags/listenerPath/listenerMetadata/defaultErrnoRet and resources.unified.
- License: Apache-2.0, Copyright 2015 The Linux Foundation (see LICENSE)

| file | sha256 |
| --- | --- |
${rows}

## koci's files

| file | what |
| --- | --- |
${kociRows || '| (none yet) | |'}

koci-extensions.json covers what runtime-spec 1.1.0 through 1.3.0 added that the
snapshot above lacks: process.scheduler, process.ioPriority,
process.execCPUAffinity, the \`time\` namespace type, linux.timeOffsets,
linux.netDevices, linux.memoryPolicy, linux.intelRdt.schemata and
enableMonitoring, linux.personality.domain being required, an optional
linux.resources.pids.limit, and (as plain objects) freebsd and vm.hwConfig.

A config is valid only if it passes both the official
config-schema.json (with the build-time adjustments below) and
koci-extensions.json.

## Build-time adjustments to the official schema

The vendored files are never edited. scripts/build-validators.js patches its
in-memory copy before compiling, only where 1.1-1.3 loosened a rule the
snapshot enforces (there is no \`additionalProperties: false\` in the snapshot,
so new fields themselves are not rejected):

- defs-linux.json NamespaceType enum: adds \`time\` (added in 1.1.0).
- defs-linux.json SeccompArch enum: adds \`SCMP_ARCH_LOONGARCH64\`,
  \`SCMP_ARCH_M68K\`, \`SCMP_ARCH_SH\`, \`SCMP_ARCH_SHEB\` (added after this
  snapshot; listed by runtime-spec 1.3.0).
- config-linux.json linux.resources.pids: drops \`required: ["limit"]\`
  (limit became optional in 1.3.0).
`;
  fs.writeFileSync(path.join(outDir, 'PROVENANCE.md'), md);
}

main();
