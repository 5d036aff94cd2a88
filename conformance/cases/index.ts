/** Every case, in the order they run. */
import { cgroups } from './cgroups';
import { execCases, features, terminal } from './exec';
import { filesystem } from './filesystem';
import { invalid } from './invalid';
import { hooks, lifecycle } from './lifecycle';
import { namespaces } from './namespaces';
import { processCases, security } from './process';
import type { Case } from './types';

export type { Case } from './types';

const NOTES: Record<string, string> = {
  'hooks: every kind runs, in lifecycle order':
    'runc 1.1.5 runs poststart hooks during create; runtime-spec config.md: poststart hooks MUST be called after the user-specified process is executed (crun follows it)',
  'hooks: stdin carries the container state; args and env are passed':
    'crun 1.8.1 gives startContainer hooks bundle "/" and createContainer/startContainer hooks pid 0; runtime-spec runtime.md: bundle is the absolute path to the bundle directory, and for hooks executed in the container namespace pid is the pid as seen by the container, 1 (runc follows both)',
  'domainname: set in the new uts namespace': 'runc 1.1.5 ignores domainname (config.md: domainname sets the container\'s domainname; crun follows it)',
  'mounts: propagation rprivate and rshared': 'crun 1.8.1 ignores rshared on a bind mount; config.md mount options include propagation flags (runc follows it)',
  'namespace user: joined by path':
    'runc 1.1.5 refuses it without uidMappings/gidMappings in the config ("no uid mappings found"); config-linux.md: uidMappings and gidMappings are OPTIONAL, and when a namespace has a path the runtime MUST place the container process in the namespace at that path (crun follows it)',
  'invalid config: ociVersion missing': 'runc 1.1.5 does not check ociVersion; config.md: ociVersion is REQUIRED (crun follows it)',
  'invalid config: ociVersion not SemVer': 'runc 1.1.5 does not check ociVersion; config.md: ociVersion MUST be in SemVer v2.0.0 format (crun follows it)',
  'invalid config: process.args missing': 'crun 1.8.1 accepts it; config.md: args is REQUIRED when process is set (runc follows it)',
  'invalid config: process.cwd relative': 'crun 1.8.1 accepts it; config.md: cwd MUST be an absolute path (runc follows it)',
  'invalid config: hook path relative':
    "runc 1.1.5 runs a relative hook path from the bundle directory; config.md: a hook's path MUST be absolute (crun 1.8.1 does not run it, it looks the name up in PATH, and fails create)",
  'invalid config: hostname of the wrong type': 'crun 1.8.1 ignores the wrongly typed field; the schema says string (runc follows it)',
  'invalid config: process.user.uid of the wrong type': 'crun 1.8.1 ignores the wrongly typed field; the schema says integer (runc follows it)',
  'invalid config: a namespace type listed twice': 'crun 1.8.1 accepts it; config-linux.md: if a namespace type is specified more than once the runtime MUST generate an error (runc follows it)',
  'exec flags: --user, --cwd, --env, --cap and --no-new-privs change the container process':
    "crun 1.8.1 replaces the process env with the -e values (PATH is lost: `sh` not found); runtime-spec defines no exec command, the case follows runc's CLI, which orchestrators call: -e adds to the container process's env",
  'features: JSON with ociVersionMin and ociVersionMax':
    "crun 1.8.1 has no features command (\"unknown command features\"); runtime-spec features.md defines the document a runtime's `features` prints, orchestrators call it through runc's CLI (runc passes)",
  'exec flags: -g adds supplementary groups': "crun 1.8.1 has no -g/--additional-gids; runtime-spec defines no exec command, the case follows runc's CLI (runc passes)",
};

export const cases: Case[] = [...lifecycle, ...hooks, ...namespaces, ...filesystem, ...processCases, ...security, ...execCases, ...terminal, ...features, ...cgroups, ...invalid].map((c) =>
  NOTES[c.name] ? { ...c, note: NOTES[c.name] } : c,
);
