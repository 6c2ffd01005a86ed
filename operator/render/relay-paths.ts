// Where things are inside a relay pod: the mounted config, Secrets, TLS files and data
// directory, and the HTTP port. The config refers to these paths and the pod mounts them.
export const CONFIG_DIR = '/etc/mailfleet';
export const CONFIG_FILE = `${CONFIG_DIR}/relay.yaml`;
export const SECRETS_DIR = '/var/run/mailfleet/secrets';
export const TLS_DIR = '/var/run/mailfleet/tls';
export const DATA_DIR = '/var/lib/mailfleet';
export const HTTP_PORT = 9464;

export const secretFile = (key: string) => `${SECRETS_DIR}/${key}`;

/** The internal hand-off listener (scale-down): only the fleet's pods reach it (NetworkPolicy). */
export const HANDOFF_PORT = 2526;
/** The pod's own annotations, from the downward API: where the relay sees a drain request. */
export const PODINFO_DIR = '/var/run/mailfleet/podinfo';
export const ANNOTATIONS_FILE = `${PODINFO_DIR}/annotations`;
/** The fleet token's file in the relay's Secret: hand-off sessions authenticate with it. */
export const FLEET_TOKEN_KEY = 'fleet.token';
