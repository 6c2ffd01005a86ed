// Test sinks, receivers and DNS answers live on loopback, which the relay refuses as an
// outbound target by default (relay/outbound/targets.ts). Tests that deliver there opt in
// explicitly through the same config switch an operator would use.
import { OutboundPolicy, type OutboundConfig } from '../../relay/outbound/targets.ts';

export const loopbackSinksConfig: OutboundConfig = { allowAddresses: ['127.0.0.0/8', '::1/128'] };
export const loopbackSinks = new OutboundPolicy(loopbackSinksConfig);
