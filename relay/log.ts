// One pino logger for the relay; child loggers carry the queue id or listener name.
// Secrets never reach a log line: the redact list covers every field that may hold one.
import { pino, type Logger } from 'pino';

export type { Logger };

export const redactPaths = [
  'password', '*.password', 'pass', '*.pass', 'auth.pass', 'auth.password',
  'privateKey', '*.privateKey', 'secret', '*.secret', 'config.credentials',
];

export function createLogger(level: string = process.env.MAILFLEET_LOG_LEVEL ?? 'info'): Logger {
  return pino({
    level,
    base: { app: 'mailfleet' },
    redact: { paths: redactPaths, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
  });
}

/** A logger that drops everything: for pure units and benchmarks of components. */
export const silentLogger: Logger = pino({ level: 'silent' });
