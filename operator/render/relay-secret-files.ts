// The relay's one Secret as it is filled during a render: the relay's own files, then each
// SenderDomain's from a stage of its own (relay-domains.ts), and the sizes that must stay
// under what the API server stores. Names: relay-secret-keys.ts.
import { secretFile } from './relay-paths.ts';
import { isDomainFile, validSecretKey } from './relay-secret-keys.ts';
import type { OAuth2Check, SecretReader } from './smarthost-oauth2.ts';

/**
 * What the relay's Secret and its config may hold (bytes): the API server refuses a Secret or
 * ConfigMap whose data pass 1 MiB, and the relay would then get nothing new at all.
 */
export const OBJECT_DATA_MAX = 1024 * 1024 - 16 * 1024;
export const byteSize = (s: string) => Buffer.byteLength(s, 'utf8');
/** Keys and values of a Secret's data, in bytes. */
export const filesSize = (data: Record<string, string>) => Object.entries(data).reduce((n, [k, v]) => n + byteSize(k) + byteSize(v), 0);

/**
 * The files of the relay's Secret, and what could not be read from user Secrets. The relay's
 * own files go in first; each SenderDomain's are staged apart (stage) and go in only when that
 * domain renders whole, so what fails for one tenant leaves out that tenant alone. A name
 * written twice with different contents is refused, never overwritten: a collision (two
 * tenants' names, or a tenant's and the relay's) would hand one's file to the other.
 */
export class SecretFiles implements SecretReader {
  readonly data: Record<string, string> = {};
  readonly errors: string[] = [];
  /** OAuth2 credentials read on the way, for the controller's check with the identity provider. */
  readonly oauth2Checks: OAuth2Check[] = [];
  private readonly user: Map<string, Record<string, string>>;
  /** Which file names this stage may write (the relay's own, or one SenderDomain's). */
  private readonly mine: (file: string) => boolean;
  /** Files already in the Secret, when this is a SenderDomain's stage. */
  private readonly committed: Record<string, string> | undefined;

  constructor(user: Map<string, Record<string, string>>, mine: (file: string) => boolean, committed?: Record<string, string>) {
    this.user = user;
    this.mine = mine;
    this.committed = committed;
  }

  /** The relay's own files: any name outside the SenderDomains' part. */
  static forRelay(user: Map<string, Record<string, string>>): SecretFiles {
    return new SecretFiles(user, (f) => !isDomainFile(f));
  }

  /** A stage for one SenderDomain's files (all starting with owner_), reading its own user Secrets. */
  stage(owner: string, user: Map<string, Record<string, string>> | undefined): SecretFiles {
    return new SecretFiles(user ?? new Map(), (f) => f.startsWith(`${owner}_`), this.data);
  }

  /**
   * Takes in a stage that rendered whole, unless one of its names already holds other
   * contents here (then nothing of it, and why).
   */
  commit(stage: SecretFiles): string[] {
    const taken = Object.entries(stage.data).filter(([file, value]) => this.data[file] !== undefined && this.data[file] !== value)
      .map(([file]) => `file ${file} of the relay's Secret is already written with other contents; refused rather than overwritten`);
    if (taken.length) return taken;
    Object.assign(this.data, stage.data);
    this.oauth2Checks.push(...stage.oauth2Checks);
    return [];
  }

  /** A value from a user Secret, or undefined (and an error naming it). */
  read(name: string, key: string, what: string): string | undefined {
    const s = this.user.get(name);
    if (!s) { this.errors.push(`${what}: Secret ${name} not found`); return undefined; }
    const v = s[key];
    if (v === undefined) { this.errors.push(`${what}: Secret ${name} has no key ${key}`); return undefined; }
    return v;
  }

  /** A value that may be absent (e.g. the client secret of a public OAuth client). */
  optional(name: string, key: string): string | undefined {
    return this.user.get(name)?.[key];
  }

  /** Stores value as a file of the relay's Secret; returns the path the relay reads it from. */
  put(file: string, value: string): string {
    const had = this.data[file] ?? this.committed?.[file];
    if (!validSecretKey(file) || !this.mine(file)) this.errors.push(`file ${file}: not a name this part of the relay's Secret may use (operator/render/relay-secret-keys.ts)`);
    else if (had !== undefined && had !== value) this.errors.push(`file ${file} of the relay's Secret is already written with other contents; refused rather than overwritten`);
    else this.data[file] = value;
    return secretFile(file);
  }
}
