/** Everything the forked children need, computed by the runtime before it forks (a pure conversion of the spec). */
import type { NamespacePlan } from '../namespaces';
import type { Process, Spec, State } from '../spec/types';
import type { SeccompFilter } from '../security/seccomp';

export interface InitPlan {
  id: string;
  bundle: string;
  rootfs: string;
  config: Spec;
  ns: NamespacePlan;
  noPivot: boolean;
  /** keep the caller's session keyring instead of joining a new one (`--no-new-keyring`) */
  noNewKeyring: boolean;
  /** O_PATH fd of exec.fifo, opened by the runtime; the init reopens it for writing */
  fifoFd: number;
  /** fds 3 .. 3+preserveFds-1 pass to the container process */
  preserveFds: number;
  /** the runtime's own fds that must not stay open in the children (the state lock: flock follows the open file) */
  runtimeFds: number[];
  /** linux.seccomp built and compiled by the runtime (inherited through fork); the init only loads it */
  seccomp?: SeccompFilter;
  /**
   * the container's v1 cgroups that koci's own process moves into (a `tasks` write of 0, no global lock):
   * stage 1 before it forks, so that the init is born in them, or with lateJoin the init itself
   */
  selfJoin: string[];
  /** the init joins selfJoin once the runtime says they are ready (`cgroups`): it mounts while the runtime makes them */
  lateJoin: boolean;
  /**
   * an fd of the container's cgroup2 cgroup: stage 1 forks the init into it (clone3), which spares the
   * cgroup.procs write; the runtime adds the init to whatever it was not born in while it mounts, then says `cgroups`
   */
  cgroup2Fd?: number;
  /** forked directly: a network namespace made ahead (namespaces/index.ts) that the init joins instead of a new one */
  network?: number;
  /** prestart or createRuntime hooks: the init stops for them once it has mounted (else it goes on) */
  runtimeHooks: boolean;
  /** forked by the runtime itself (stage1.ts, cloneInit): the init does stage 1's share of the work */
  direct?: boolean;
}

/** exec: what the forked children need to join a running container and become one more of its processes */
export interface ExecPlan {
  id: string;
  /** the init's namespaces, in setns order */
  join: NamespacePlan['join'];
  process: Process;
  /** the container's config with `process` replaced: for the LSM exec label */
  config: Spec;
  state: State;
  preserveFds: number;
  /** the container's linux.seccomp, built by the runtime */
  seccomp?: SeccompFilter;
  /** join the container's session keyring (unless create had --no-new-keyring) */
  keyring: boolean;
  /**
   * the `tasks` files of the container's v1 cgroups, opened by the runtime (host paths mean nothing
   * after setns): stage 2 writes 0 to each, moving itself without the global lock (cgroups/index.ts)
   */
  cgroupTasksFds: number[];
  /** the container's cgroup2 cgroup: stage 1 forks stage 2 into it where the kernel allows (clone3) */
  cgroup2Fd?: number;
}
