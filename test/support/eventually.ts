// Polling with a deadline: how tests wait for a real system to converge without sleeping
// blindly or asserting on timings. Returns the first truthy value; errors thrown by fn
// count as "not yet" and the last one is reported on timeout.
export async function eventually<T>(
  what: string,
  fn: () => Promise<T | undefined | false> | T | undefined | false,
  timeoutMs = 120_000,
  opts: { everyMs?: number; context?: () => string } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, opts.everyMs ?? 300));
  }
  const context = opts.context ? `\n${opts.context()}` : '';
  throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}${context}`);
}
