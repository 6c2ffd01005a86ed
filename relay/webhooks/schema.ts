// Webhook config and event shapes.
import { z } from 'zod';

export const webhookEventTypes = ['delivered', 'deferred', 'bounced', 'expired', 'suppressed'] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

export const webhookSchema = z
  .strictObject({
    url: z
      .string()
      .refine((u) => URL.canParse(u) && /^https?:$/.test(new URL(u).protocol), 'url must be an http:// or https:// URL')
      .describe('Receiver URL (http:// or https://)'),
    secretFile: z.string().min(1)
      .describe('File holding the HMAC secret (a mounted Secret); surrounding whitespace is trimmed'),
    events: z.array(z.enum(webhookEventTypes)).min(1).optional().describe('Only these event types are sent; all when absent'),
    timeoutMs: z.number().int().positive().max(120_000).default(10_000)
      .describe('Time one POST may take, headers to end of body, in milliseconds'),
    maxAgeHours: z.number().positive().max(24 * 30).default(24)
      .describe('Undelivered events older than this are dropped (logged and counted), in hours'),
    concurrency: z.number().int().positive().max(64).default(4).describe('POSTs in flight at once'),
    retryBaseMs: z.number().int().positive().default(5_000)
      .describe('Backoff after the first failure, in milliseconds; doubles per failure up to retryMaxMs (±20% jitter)'),
    retryMaxMs: z.number().int().positive().default(600_000).describe('Longest backoff between tries, in milliseconds'),
    maxOutboxEvents: z.number().int().positive().default(100_000)
      .describe('Undelivered events held at most; past it a new event is dropped (logged and counted)'),
  });

export type WebhookConfig = z.infer<typeof webhookSchema>;
export type WebhookConfigInput = z.input<typeof webhookSchema>;

/** What the delivery loop hands to emit(). Extra fields are passed through to the receiver. */
export interface WebhookEventInput {
  type: WebhookEventType;
  queueId: string;
  recipient: string;
  from?: string;
  /** The remote server's reply text, if any. */
  response?: string;
  /** SMTP code / enhanced status, e.g. 550 or "550 5.1.1". */
  code?: number | string;
  [extra: string]: unknown;
}

/** The JSON body POSTed: the input plus a unique event id and an ISO 8601 timestamp. */
export interface WebhookEvent extends WebhookEventInput {
  id: string;
  timestamp: string;
}
