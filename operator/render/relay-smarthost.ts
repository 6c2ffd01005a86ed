// A smarthost of the CRD (the relay's, or a SenderDomain's own) → the relay's smarthost
// config, its login's files put in the relay's Secret.
import type { SmarthostConfigInput } from '../../relay/delivery/schema.ts';
import type { EmailRelaySpec } from '../api/emailrelay.ts';
import type { SecretFiles } from './relay-secret-files.ts';
import { renderSmarthostOAuth2 } from './smarthost-oauth2.ts';

export type SmarthostSpec = NonNullable<EmailRelaySpec['delivery']['smarthosts']>[number];

/** `filePrefix` names this smarthost's files in the relay's Secret (smarthost-0.password, ...). */
export function smarthostConfig(files: SecretFiles, h: SmarthostSpec, filePrefix: string, what: string, name = h.name): SmarthostConfigInput {
  const out: SmarthostConfigInput = { host: h.host, port: h.port, tls: h.tls, requireTls: h.requireTls };
  if (name) out.name = name;
  const ref = h.credentialsSecretRef;
  if (ref) {
    const user = files.read(ref.name, ref.usernameKey, `${what} credentials`);
    const pass = files.read(ref.name, ref.passwordKey, `${what} credentials`);
    if (user !== undefined && pass !== undefined) out.auth = { user, passwordFile: files.put(`${filePrefix}.password`, pass) };
  }
  if (h.oauth2) {
    const o = renderSmarthostOAuth2(h.oauth2, files, filePrefix, `${what}${h.name ? ` (${h.name})` : ''}`);
    if (o) {
      out.auth = o.auth;
      files.oauth2Checks.push(o.check);
    }
  }
  return out;
}
