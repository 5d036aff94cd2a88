/** The runtime-spec version koci implements and writes (ociVersion of `koci spec`, ociVersionMax of `features`). */
export const KOCI_OCI_VERSION = '1.3.0';
