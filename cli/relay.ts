// `mailfleet relay`: runs until SIGTERM/SIGINT, reloads on SIGHUP, exits 0 after a drain.
import { createLogger } from '../relay/log.ts';
import { loadConfigFile, ConfigError } from '../relay/config/load.ts';
import { Relay } from '../relay/relay.ts';
import { devConfig } from '../relay/dev.ts';

export type RelaySource = { configFile: string } | { dev: { deliver: boolean } };

export async function runRelay(source: RelaySource): Promise<number> {
  const log = createLogger();
  let relay: Relay;
  try {
    if ('dev' in source) {
      const { config, notice } = await devConfig({ deliver: source.dev.deliver });
      relay = new Relay({ config, log });
      process.stderr.write(`\n  MailFleet dev relay: submission 127.0.0.1:2587 (STARTTLS), 127.0.0.1:2465 (TLS), metrics http://127.0.0.1:9464/metrics\n  ${notice}\n  try: swaks --server 127.0.0.1:2587 --tls --auth-user dev --auth-password ... --from you@example.test --to someone@example.org\n\n`);
    } else {
      relay = new Relay({ config: loadConfigFile(source.configFile), configFile: source.configFile, log });
    }
    await relay.start();
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`${err.message}\n`);
      return 1;
    }
    log.fatal({ err: (err as Error).message }, 'relay failed to start');
    return 1;
  }
  process.on('SIGHUP', () => void relay.reload('SIGHUP'));
  await new Promise<void>((resolve) => {
    const stop = (sig: string) => {
      log.info({ signal: sig }, 'stopping');
      relay.stop().then(resolve, (err: Error) => { log.error({ err: err.message }, 'stop failed'); resolve(); });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
  // Everything queued is safe on disk now. A socket still open (a health probe waiting for
  // a greeting, a client that never closed its side) must not keep the process past the
  // drain deadline: exit on our own unless the event loop ends first.
  setTimeout(() => process.exit(), 500).unref();
  return 0;
}
