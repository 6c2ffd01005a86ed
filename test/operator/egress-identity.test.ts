// Forward-confirmed reverse DNS of an MX relay's egress addresses, against two authoritative
// servers on loopback (the operator's --dns-servers): PTR and A/AAAA records are added,
// changed and removed during the test, and the EgressIdentityVerified condition follows on
// the next scheduled check (never before it, unless the hostname or addresses change).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EgressIdentityChecker, lookupEgressIdentity, splitAddresses } from '../../operator/controllers/egress-identity.ts';
import { egressIdentityCondition } from '../../operator/render/egress-identity.ts';
import { reverseName, startDnsServer, type TestDnsServer, type Zone } from '../support/dns-server.ts';
import { relayObject } from './fixtures.ts';

const HOST = 'mail.example.net';
const V4 = '192.0.2.25';
const V6 = '2001:db8::25';

let a: TestDnsServer;
let b: TestDnsServer;
beforeAll(async () => {
  a = await startDnsServer();
  b = await startDnsServer();
});
afterAll(async () => {
  await a?.close();
  await b?.close();
});

/** Both servers answer the same zone. */
const publish = (zone: Zone) => { a.setZone(zone); b.setZone(zone); };

const good: Zone = {
  [reverseName(V4)]: { PTR: [`${HOST}.`] },
  [reverseName(V6)]: { PTR: [HOST] },
  [HOST]: { A: [V4], AAAA: ['2001:0db8:0000::0025'] },
};

describe('egress identity (FCrDNS) against loopback DNS', () => {
  it('names the reverse zone of IPv4 and IPv6 addresses', () => {
    expect(reverseName('192.0.2.25')).toBe('25.2.0.192.in-addr.arpa');
    expect(reverseName('2001:db8::25')).toBe(`5.2.${'0.'.repeat(22)}8.b.d.0.1.0.0.2.ip6.arpa`);
    expect(reverseName('2001:db8:1:2:3:4:5:6')).toBe('6.0.0.0.5.0.0.0.4.0.0.0.3.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa');
    expect(reverseName('::ffff:192.0.2.1')).toBe(`1.0.2.0.0.0.0.c.f.f.f.f.${'0.'.repeat(20)}ip6.arpa`);
  });

  it('confirms a PTR that resolves back, and says what is wrong otherwise', async () => {
    const servers = [a.address, b.address];
    const cond = async (addresses: string[]) => {
      const { single, ranges } = splitAddresses(addresses);
      return egressIdentityCondition({ hostname: HOST, results: await Promise.all(single.map((x) => lookupEgressIdentity(x, servers))), ranges });
    };
    publish(good);
    expect(await cond([V4, `${V6}/128`, '198.51.100.0/28'])).toEqual({
      type: 'EgressIdentityVerified', status: 'True', reason: 'ForwardConfirmed',
      message: `${V4}, ${V6} → ${HOST}: PTR and A/AAAA agree; ranges not checked address by address: 198.51.100.0/28`,
    });

    // no PTR at all
    publish({ [HOST]: { A: [V4] } });
    expect(await cond([V4])).toMatchObject({ status: 'False', reason: 'PTRMissing', message: expect.stringMatching(/^192\.0\.2\.25 has no PTR record/) });

    // PTR whose name does not resolve back to the address
    publish({ [reverseName(V4)]: { PTR: [HOST] }, [HOST]: { A: ['192.0.2.99'] } });
    expect(await cond([V4])).toMatchObject({ status: 'False', reason: 'NotForwardConfirmed', message: `${V4}'s PTR ${HOST} does not resolve back to ${V4} (add the A/AAAA record)` });

    // forward-confirmed, but under another name than the EHLO name
    publish({ [reverseName(V4)]: { PTR: ['ip-192-0-2-25.cloud.example'] }, 'ip-192-0-2-25.cloud.example': { A: [V4] } });
    expect(await cond([V4])).toMatchObject({
      status: 'False', reason: 'HostnameMismatch',
      message: `${V4}'s PTR names ip-192-0-2-25.cloud.example, not hostname ${HOST} (the relay's EHLO name): make them the same`,
    });

    // one resolver has it, the other does not: not confirmed (receivers ask other resolvers)
    a.setZone(good);
    b.setZone({ [HOST]: { A: [V4] } });
    expect(await cond([V4])).toMatchObject({ status: 'False', reason: 'PTRMissing' });

    // a resolver that fails is a failed lookup, named, not a missing record
    publish(good);
    b.setZone({ [reverseName(V4)]: { servfail: true } });
    expect(await cond([V4])).toMatchObject({ status: 'False', reason: 'LookupFailed', message: `${V4}: reverse DNS lookup failed (PTR: ESERVFAIL at ${b.address})` });
  });

  it('checks again on its schedule, or at once when the hostname or addresses change', async () => {
    let now = 1_000_000;
    const checker = new EgressIdentityChecker({ dnsServers: [a.address, b.address], recheckMs: 60_000, now: () => now });
    const relay = (spec: Parameters<typeof relayObject>[1]) => relayObject('edge', spec).spec;
    const mx = relay({ hostname: HOST, delivery: { egress: { addresses: [V4] } } });
    publish({});
    const first = await checker.check('mail/edge', mx);
    expect(first).toMatchObject({ condition: { status: 'False', reason: 'PTRMissing' }, recheckInMs: 60_000 });

    // the record appears: not looked at before the schedule says so
    publish(good);
    now += 30_000;
    expect(await checker.check('mail/edge', mx)).toMatchObject({ condition: { status: 'False' }, recheckInMs: 30_000 });
    now += 30_000;
    expect(await checker.check('mail/edge', mx)).toMatchObject({ condition: { status: 'True', reason: 'ForwardConfirmed' }, recheckInMs: 60_000 });

    // removed again: found on the next check
    publish({ [HOST]: { A: [V4] } });
    now += 60_000;
    expect((await checker.check('mail/edge', mx))?.condition).toMatchObject({ status: 'False', reason: 'PTRMissing' });

    // a changed spec is checked at once
    publish(good);
    now += 1;
    const both = relay({ hostname: HOST, delivery: { egress: { addresses: [V4, V6] } } });
    expect((await checker.check('mail/edge', both))?.condition).toMatchObject({ status: 'True', message: `${V4}, ${V6} → ${HOST}: PTR and A/AAAA agree` });

    // nothing to check: no addresses (Unknown), or a smarthost relay (no condition)
    expect((await checker.check('mail/edge', relay({ hostname: HOST })))?.condition).toMatchObject({ status: 'Unknown', reason: 'NoEgressAddresses' });
    expect(await checker.check('mail/edge', relay({ delivery: { mode: 'smarthost', smarthosts: [{ host: 'smtp.example.com' }] } }))).toBeUndefined();
  });
});
