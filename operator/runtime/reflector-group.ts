// One kind's view across the watch scope: a single cluster-wide reflector, or one reflector
// per watched namespace (a namespace-scoped install may not list cluster-wide). Reads are
// the same either way, so controllers never know which install they run in.
import type { KubeObject } from '../render/objects.ts';
import type { Reflector } from './reflector.ts';

export class ReflectorGroup<T extends KubeObject> {
  readonly kind: string;
  /** Keyed by namespace; '' for the single cluster-wide reflector. */
  private readonly members: Map<string, Reflector<T>>;
  readonly whenSynced: Promise<void>;

  constructor(kind: string, members: Map<string, Reflector<T>>) {
    if (members.size === 0) throw new Error(`${kind}: no reflector (an empty watch scope)`);
    this.kind = kind;
    this.members = members;
    this.whenSynced = Promise.all([...members.values()].map((r) => r.whenSynced)).then(() => undefined);
  }

  private for(namespace: string | undefined): Reflector<T> | undefined {
    return this.members.get('') ?? this.members.get(namespace ?? '');
  }

  get(namespace: string | undefined, name: string): T | undefined {
    return this.for(namespace)?.get(namespace, name);
  }

  /** Every object, or a namespace's; a namespace outside the scope has none. */
  list(namespace?: string): T[] {
    if (namespace !== undefined) return this.for(namespace)?.list(namespace) ?? [];
    return [...this.members.values()].flatMap((r) => r.list());
  }

  get synced(): boolean {
    return [...this.members.values()].every((r) => r.synced);
  }

  healthy(now?: number): boolean {
    return [...this.members.values()].every((r) => r.healthy(now));
  }

  /** Members that have not listed yet, as "Kind" or "Kind in ns" (for the sync-timeout error). */
  pending(): string[] {
    return [...this.members].filter(([, r]) => !r.synced).map(([ns]) => (ns ? `${this.kind} in ${ns}` : this.kind));
  }

  start(): void {
    for (const r of this.members.values()) r.start();
  }

  async close(): Promise<void> {
    await Promise.all([...this.members.values()].map((r) => r.close()));
  }
}
