/**
 * Config fields that are valid runtime-spec but that koci cannot honour:
 * refused before anything is made, never silently ignored. `koci features`
 * says the same (netDevices, intelRdt and idmap mounts: enabled false).
 */
import { UnsupportedError } from '../errors';
import { checkScheduling } from '../process/scheduling';
import type { Spec } from './types';

/** throws UnsupportedError naming the first field koci cannot honour */
export function refuseUnsupported(config: Spec): void {
  const linux = config.linux;
  if (linux?.netDevices && Object.keys(linux.netDevices).length > 0) {
    throw new UnsupportedError('linux.netDevices: moving host network devices into the container is not implemented', 'linux.netDevices');
  }
  if (linux?.intelRdt) {
    // even an empty object asks for a resctrl group named after the container
    throw new UnsupportedError('linux.intelRdt: Intel RDT (resctrl) is not implemented', 'linux.intelRdt');
  }
  (config.mounts ?? []).forEach((m, i) => {
    const mapped = (m.uidMappings?.length ?? 0) > 0 || (m.gidMappings?.length ?? 0) > 0 || (m.options ?? []).some((o) => o === 'idmap' || o === 'ridmap');
    if (mapped) throw new UnsupportedError(`mounts[${i}] (${m.destination}): idmapped mounts (uidMappings/gidMappings, "idmap", "ridmap") are not implemented`, `mounts.${i}`);
  });
  // scheduler, ioPriority, personality, memoryPolicy: values koci has no kernel constant for
  checkScheduling(config.process, linux);
}
