// `auth.oauth2` of a smarthost: where the relay gets the bearer token it presents with SASL
// XOAUTH2 / OAUTHBEARER. Exactly one token source. Secrets are files (mounted Secrets) so a
// rotated Secret reloads without a restart; token URLs default to the platforms' published
// endpoints and can be pointed elsewhere (a sovereign cloud, or a loopback provider in tests).
import { z } from 'zod';

const file = (what: string) => z.string().min(1).describe(`File holding ${what} (a mounted Secret); read at config load, never logged`);
const httpsUrl = z.url({ protocol: /^https$/, error: 'must be an https:// URL (the token request carries a credential)' });

export const MICROSOFT_SCOPE = 'https://outlook.office365.com/.default';
export const GOOGLE_SCOPE = 'https://mail.google.com/';
export const GOOGLE_TOKEN_URL = 'https://oauth2.googleapis.com/token';
export const microsoftTokenUrl = (tenantId: string) => `https://login.microsoftonline.com/${encodeURIComponent(tenantId)}/oauth2/v2.0/token`;

export const microsoftSourceSchema = z.strictObject({
  tenantId: z.string().min(1).max(128).regex(/^[A-Za-z0-9.-]+$/, { message: 'a tenant id (GUID) or a verified domain such as contoso.onmicrosoft.com' })
    .describe('Microsoft Entra tenant (directory) id or its verified domain'),
  clientId: z.string().min(1).max(128).describe('Application (client) id of the app registration'),
  clientSecretFile: file('the client secret').optional(),
  certificateFile: file('the PEM certificate registered with the app (its thumbprint goes into the client assertion)').optional(),
  privateKeyFile: file('the PEM private key of certificateFile (signs the client assertion)').optional(),
  scope: z.string().min(1).default(MICROSOFT_SCOPE).describe('Scope requested with the client credentials grant (Exchange Online SMTP)'),
  tokenUrl: httpsUrl.optional().describe('Token endpoint; default https://login.microsoftonline.com/<tenantId>/oauth2/v2.0/token'),
}).superRefine((m, ctx) => {
  const cert = m.certificateFile !== undefined || m.privateKeyFile !== undefined;
  if ((m.clientSecretFile !== undefined) === cert) {
    ctx.addIssue({ code: 'custom', message: 'set clientSecretFile, or certificateFile and privateKeyFile (not both)' });
  } else if (cert && (m.certificateFile === undefined || m.privateKeyFile === undefined)) {
    ctx.addIssue({ code: 'custom', path: [m.certificateFile === undefined ? 'certificateFile' : 'privateKeyFile'], message: 'a certificate credential needs both certificateFile and privateKeyFile' });
  }
}).describe('Microsoft identity platform, client credentials grant (app-only access to Exchange Online SMTP)');

export const googleSourceSchema = z.strictObject({
  serviceAccountKeyFile: file('the service account JSON key (client_email, private_key)'),
  scope: z.string().min(1).default(GOOGLE_SCOPE).describe('Scope delegated to the service account in the Workspace admin console'),
  tokenUrl: httpsUrl.optional().describe(`Token endpoint; default the key's token_uri, else ${GOOGLE_TOKEN_URL}`),
}).describe('Google service account with domain-wide delegation (JWT bearer grant; the SMTP user is the subject)');

export const refreshTokenSourceSchema = z.strictObject({
  tokenUrl: httpsUrl.default(GOOGLE_TOKEN_URL).describe('Token endpoint of the provider that issued the refresh token'),
  clientId: z.string().min(1).max(256).describe('OAuth client id the refresh token was issued to'),
  clientSecretFile: file('the OAuth client secret').optional(),
  refreshTokenFile: file('the refresh token (from a one-time consent by the mailbox owner)'),
  scope: z.string().min(1).optional().describe('Scope sent with the refresh grant (Microsoft wants e.g. https://outlook.office.com/SMTP.Send offline_access)'),
}).describe('A refresh token obtained once by a person (three-legged consent)');

export const oauth2Schema = z.strictObject({
  mechanism: z.enum(['auto', 'XOAUTH2', 'OAUTHBEARER']).default('auto')
    .describe('SASL mechanism: auto uses XOAUTH2 when the smarthost offers it, else OAUTHBEARER (RFC 7628)'),
  userFromSender: z.boolean().default(false)
    .describe('Log in as the envelope sender instead of user (each sender gets its own token and connections); user still serves the null sender (bounces)'),
  microsoft: microsoftSourceSchema.optional(),
  google: googleSourceSchema.optional(),
  refreshToken: refreshTokenSourceSchema.optional(),
  tokenCaFile: file('extra PEM CAs to trust for the token endpoint (a private identity provider)').optional(),
}).superRefine((o, ctx) => {
  const set = [o.microsoft, o.google, o.refreshToken].filter((s) => s !== undefined).length;
  if (set !== 1) ctx.addIssue({ code: 'custom', message: 'set exactly one token source: microsoft, google or refreshToken' });
  if (o.refreshToken && o.userFromSender) {
    ctx.addIssue({ code: 'custom', path: ['userFromSender'], message: 'a refresh token belongs to one mailbox; userFromSender needs microsoft or google' });
  }
}).describe('Log in to the smarthost with an OAuth 2.0 bearer token instead of a password');

export type OAuth2Config = z.infer<typeof oauth2Schema>;
