// Where things are inside a relay pod: the mounted config, Secrets, TLS files and data
// directory, and the HTTP port. The config refers to these paths and the pod mounts them.
export const CONFIG_DIR = '/etc/mailfleet';
export const CONFIG_FILE = `${CONFIG_DIR}/relay.yaml`;
export const SECRETS_DIR = '/var/run/mailfleet/secrets';
export const TLS_DIR = '/var/run/mailfleet/tls';
export const DATA_DIR = '/var/lib/mailfleet';
export const HTTP_PORT = 9464;

export const secretFile = (key: string) => `${SECRETS_DIR}/${key}`;
