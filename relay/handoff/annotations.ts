// The drain request as the relay sees it: the pod's annotations, written by the kubelet into
// a downward-API file (one `key="value"` per line, the value Go-quoted). Polled with stat()
// like the config, because the kubelet swaps a symlink rather than writing the file.
import fs from 'node:fs';

export const DRAIN_ANNOTATION = 'mailfleet.io/drain-requested';

/** Parses a downward-API annotations file; lines that do not parse are skipped. */
export function parseAnnotations(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    const m = /^([^=\s]+)="(.*)"$/.exec(line.trim());
    if (!m) continue;
    let value: string;
    try {
      value = JSON.parse(`"${m[2]}"`) as string; // Go's %q and JSON agree on the escapes that matter here
    } catch {
      value = m[2]!;
    }
    out.set(m[1]!, value);
  }
  return out;
}

/** The drain request in an annotations file: its value (a time), or undefined when there is none. */
export function drainRequested(file: string): string | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined; // no file: nothing asked
  }
  const v = parseAnnotations(text).get(DRAIN_ANNOTATION);
  return v ? v : undefined;
}

/** Calls `onChange` with the drain request now and whenever it appears, changes or goes. */
export class DrainWatch {
  private readonly file: string;
  private current: string | undefined;
  private readonly onChange: (request: string | undefined) => void;

  constructor(file: string, intervalMs: number, onChange: (request: string | undefined) => void) {
    this.file = file;
    this.onChange = onChange;
    this.current = drainRequested(file);
    fs.watchFile(file, { interval: intervalMs, persistent: false }, () => this.check());
    if (this.current) queueMicrotask(() => onChange(this.current));
  }

  check(): void {
    const next = drainRequested(this.file);
    if (next === this.current) return;
    this.current = next;
    this.onChange(next);
  }

  close(): void {
    fs.unwatchFile(this.file);
  }
}
