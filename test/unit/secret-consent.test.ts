// The Secret-consent rule (operator/tenancy/secret-consent.ts), a pure function: the
// cluster tests attack it end to end; these pin every branch of the rule itself.
import { describe, expect, it } from 'vitest';
import { SECRET_CONSENT_TYPE, secretUse } from '../../operator/tenancy/secret-consent.ts';

const secret = (labels: Record<string, string> = {}, type = 'Opaque', namespace = 'team-a') => ({ metadata: { name: 's', namespace, labels }, type });

describe('secretUse', () => {
  it('allows a Secret labelled mailfleet.io/use: "true" or of our own type, in the referrer\'s namespace', () => {
    expect(secretUse({ name: 's' }, 'team-a', secret({ 'mailfleet.io/use': 'true' }), 'f')).toEqual({ allowed: true });
    expect(secretUse({ name: 's' }, 'team-a', secret({}, SECRET_CONSENT_TYPE), 'f')).toEqual({ allowed: true });
  });

  it('refuses an unmarked Secret, naming the field, the label and the command', () => {
    const r = secretUse({ name: 'db' }, 'team-a', secret({ 'mailfleet.io/use': 'yes' }), 'delivery.smarthosts[0].credentialsSecretRef');
    expect(r).toMatchObject({ allowed: false, reason: 'SecretNotAllowed' });
    expect(!r.allowed && r.message).toBe('delivery.smarthosts[0].credentialsSecretRef: Secret db is not marked for use by MailFleet; add the label mailfleet.io/use: "true" '
      + '(kubectl label secret db -n team-a mailfleet.io/use=true) or create it with type mailfleet.io/credentials');
  });

  it('never crosses namespaces, even for a marked Secret', () => {
    expect(secretUse({ name: 's', namespace: 'mail' }, 'team-a', secret({ 'mailfleet.io/use': 'true' }, 'Opaque', 'mail'), 'f'))
      .toMatchObject({ allowed: false, reason: 'SecretNotAllowed', message: expect.stringMatching(/must be in namespace team-a/) });
    expect(secretUse({ name: 's' }, 'team-a', secret({ 'mailfleet.io/use': 'true' }, 'Opaque', 'mail'), 'f')).toMatchObject({ allowed: false });
  });

  it('reports a missing Secret as not found', () => {
    expect(secretUse({ name: 's' }, 'team-a', undefined, 'f')).toMatchObject({ allowed: false, reason: 'SecretNotFound' });
  });
});
