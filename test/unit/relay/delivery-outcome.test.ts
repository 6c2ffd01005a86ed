// The delivery outcome table: what nodemailer reports for one transaction, mapped to
// delivered / deferred (retried) / failed (bounced), or to "unreachable" (try the next
// host). A wrong row here either bounces mail that would have gone through later, or
// retries for days mail that the destination has already refused for good.
import { describe, expect, it } from 'vitest';
import { fromError, fromInfo, hostFailure, parseEnhanced, type SmtpError } from '../../../relay/delivery/outcome.ts';

const base = { remote: 'mx.example.org[192.0.2.1]:25', route: 'mx' as const };
const err = (message: string, fields: Partial<SmtpError>): SmtpError => Object.assign(new Error(message), fields);
const statusOf = (v: ReturnType<typeof fromError>) => (v.kind === 'answer' ? v.outcomes.map((o) => [o.status, o.enhanced ?? null]) : ['unreachable', v.failure.enhanced]);

describe('delivery outcome table', () => {
  it.each([
    // [what happened, error, body started, expected]
    ['550 5.1.1 to RCPT: bounce with the peer\'s code', err('rcpt', { code: 'EENVELOPE', command: 'RCPT TO', responseCode: 550, response: '550 5.1.1 no such user' }), false, [['failed', '5.1.1']]],
    ['450 4.2.0 to RCPT: defer', err('rcpt', { code: 'EENVELOPE', command: 'RCPT TO', responseCode: 450, response: '450 4.2.0 mailbox busy' }), false, [['deferred', '4.2.0']]],
    ['552 to DATA: bounce', err('data', { code: 'EMESSAGE', command: 'DATA', responseCode: 552, response: '552 5.3.4 message too big' }), true, [['failed', '5.3.4']]],
    ['451 to DATA after the body: defer, not unreachable', err('data', { code: 'EMESSAGE', command: 'DATA', responseCode: 451, response: '451 4.3.0 local problem' }), true, [['deferred', '4.3.0']]],
    ['5xx to MAIL FROM without an enhanced code: bounce, code from the reply only', err('mail', { code: 'EENVELOPE', command: 'MAIL FROM', responseCode: 553, response: '553 sender rejected' }), false, [['failed', null]]],
    ['421 to RCPT (closing): the host is going away, try the next', err('rcpt', { code: 'EENVELOPE', command: 'RCPT TO', responseCode: 421, response: '421 4.3.2 shutting down' }), false, ['unreachable', '4.3.2']],
    ['connection refused: next host', err('connect', { code: 'ESOCKET', originalCode: 'ECONNREFUSED', command: 'CONN' }), false, ['unreachable', '4.4.1']],
    ['greeting timeout: next host', err('Greeting never received', { code: 'ETIMEDOUT', command: 'CONN' }), false, ['unreachable', '4.4.1']],
    ['connection lost after body bytes went out: defer (another host could duplicate it)', err('Connection closed', { code: 'ECONNECTION' }), true, [['deferred', '4.4.2']]],
    ['connection lost before the body: next host', err('Connection closed', { code: 'ECONNECTION' }), false, ['unreachable', '4.4.2']],
    ['local read error of the spooled message: defer', err('ENOENT', { code: 'ESTREAM' }), false, [['deferred', '4.3.0']]],
    ['invalid envelope found by nodemailer itself: bounce', err('bad address', { code: 'EENVELOPE', command: 'API' }), false, [['failed', '5.1.3']]],
    ['over the SIZE the server announced: bounce', err('Message size exceeds', { code: 'EMESSAGE' }), false, [['failed', '5.3.4']]],
    ['TLS failure: next host, security code', err('tls', { code: 'ETLS', command: 'STARTTLS' }), false, ['unreachable', '4.7.4']],
    ['credentials refused: never a bounce (a config problem)', err('auth', { code: 'EAUTH', command: 'AUTH PLAIN', responseCode: 535, response: '535 5.7.8 bad credentials' }), false, ['unreachable', '4.7.0']],
  ] as const)('%s', (_what, e, bodyStarted, expected) => {
    expect(statusOf(fromError(['a@example.org'], e, base, bodyStarted, false))).toEqual(expected);
  });

  it('gives each recipient its own reply when every RCPT was refused', () => {
    const e = err('all refused', {
      code: 'EENVELOPE', command: 'RCPT TO', responseCode: 550, response: '550 5.1.1 a',
      rejectedErrors: [
        err('a', { recipient: 'A@example.org', responseCode: 550, response: '550 5.1.1 no such user' }),
        err('b', { recipient: 'b@example.org', responseCode: 452, response: '452 4.2.2 mailbox full' }),
      ],
    });
    expect(statusOf(fromError(['a@example.org', 'b@example.org'], e, base, false, false))).toEqual([['failed', '5.1.1'], ['deferred', '4.2.2']]);
  });

  it('splits a completed transaction into accepted, refused and unreported recipients', () => {
    const outcomes = fromInfo(['a@example.org', 'b@example.org', 'c@example.org'], {
      accepted: ['A@example.org'], rejected: ['b@example.org'], response: '250 2.0.0 Ok: queued as X',
      rejectedErrors: [err('b', { recipient: 'b@example.org', responseCode: 550, response: '550 5.7.1 relaying denied' })],
    }, base);
    expect(outcomes.map((o) => [o.recipient, o.status, o.enhanced])).toEqual([
      ['a@example.org', 'delivered', '2.0.0'],
      ['b@example.org', 'failed', '5.7.1'],
      // a recipient the server reported on neither way is not guessed delivered
      ['c@example.org', 'deferred', '4.0.0'],
    ]);
  });

  it('with TLS required, a refused STARTTLS is a TLS failure, not a generic reply', () => {
    const f = hostFailure(err('starttls', { command: 'STARTTLS', responseCode: 454, response: '454 4.7.0 TLS not available' }), 'mx[192.0.2.1]:25', true);
    expect(f).toMatchObject({ enhanced: '4.7.4', response: expect.stringMatching(/TLS is required/) });
  });

  it('reads enhanced codes only in the RFC 3463 position', () => {
    expect(parseEnhanced('550 5.1.1 no such user')).toBe('5.1.1');
    expect(parseEnhanced('550-5.7.1 multi\r\n550 5.7.1 line')).toBe('5.7.1');
    expect(parseEnhanced('550 user 5.1.1 unknown')).toBeUndefined();
    expect(parseEnhanced('250 6.1.1 not a class')).toBeUndefined();
  });
});
